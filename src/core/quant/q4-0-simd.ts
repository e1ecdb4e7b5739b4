/**
 * Q4_0 from binary16 bits with WebAssembly SIMD: the same bytes as
 * `quantizeQ4_0BlocksF16` (and so as `quantizeQ4_0Blocks` on the decoded
 * values), about three times faster. Per block of 32, in four 8-lane vectors:
 * - the largest magnitude on the bits (`bits & 0x7fff` orders |x| for finite
 *   values), its first position from a lane mask, `max` that element's value
 *   (+0 for a block of zeros), `d = max / −8` and `id = 1/d` in float32 (what
 *   `Math.fround` gives in JavaScript: float64 has more than 2·24 + 2 bits, so
 *   rounding the float64 result to float32 is the float32 result);
 * - each value decoded exactly (`(bits & 0x7fff) << 13` as float32, times
 *   2^112, sign put back), `q = min(15, trunc(x·id + 8.5))` with float32
 *   multiply and add, narrowed to bytes, element j in the low nibble and
 *   j + 16 in the high one.
 * The kernel writes the 16 code bytes of each block and `d` as float32;
 * JavaScript writes `d`'s f16 bits (`numberToF16Bits`, the one f16 rounding).
 * A block holding NaN or ±Infinity stops the kernel, and the JavaScript
 * kernel raises the error for it. Where WebAssembly SIMD is missing,
 * `q4_0SimdKernel()` is undefined and the JavaScript kernel does all.
 */
import {numberToF16Bits} from '../dtype.js'
import {F32, I32, V128, WasmFunction, op, v128, wasmModule} from './wasm-binary.js'

/** Blocks per kernel call: the input (64 B per block), codes (18 B stride) and scales (4 B) fit in 6 pages. */
const BATCH = 4096
const IN_AT = 0
const OUT_AT = IN_AT + BATCH * 64
const D_AT = OUT_AT + BATCH * 18
const PAGES = Math.ceil((D_AT + BATCH * 4) / 65536)

const bytesOf16 = (f: (lane: number) => number[]) => Array.from({length: 16 / f(0).length}, (_, i) => f(i)).flat()
const i16Splat = (v: number) => bytesOf16(() => [v & 0xff, (v >> 8) & 0xff])
const i32Splat = (v: number) => bytesOf16(() => [v & 0xff, (v >> 8) & 0xff, (v >> 16) & 0xff, (v >>> 24) & 0xff])
const f32Splat = (v: number) => bytesOf16(() => [...new Uint8Array(Float32Array.of(v).buffer)])
const vconst = (bytes: number[]) => [0xfd, 0x0c, ...bytes]

// locals: parameter 0 is the block count
const N = 0
const [B, IN, OUT, DP, AMAX, H] = [1, 2, 3, 4, 5, 6]
const [MAX, D, ID] = [7, 8, 9]
const R = [10, 11, 12, 13] // the raw bits, 8 lanes each
const A = [14, 15, 16, 17] // their magnitudes
const [M, IDV, X] = [18, 19, 20]
const LOCALS = [I32, I32, I32, I32, I32, I32, F32, F32, F32, V128, V128, V128, V128, V128, V128, V128, V128, V128, V128, V128]

/** Four lanes of codes from four binary16 values (`extend` picks the low or high half of raw vector `r`). */
function codes(r: number, extend: readonly number[]): number[] {
  return [
    ...op.localGet(r),
    ...extend,
    ...op.localTee(X),
    // |x| exactly: the f16 exponent and mantissa moved into float32's, then scaled by 2^(127 − 15)
    ...vconst(i32Splat(0x7fff)),
    ...v128.and,
    ...op.i32Const(13),
    ...v128.i32x4Shl,
    ...vconst(f32Splat(2 ** 112)),
    ...v128.f32x4Mul,
    // the sign bit back
    ...op.localGet(X),
    ...vconst(i32Splat(0x8000)),
    ...v128.and,
    ...op.i32Const(16),
    ...v128.i32x4Shl,
    ...v128.or,
    // min(15, trunc(x · id + 8.5)) in float32
    ...op.localGet(IDV),
    ...v128.f32x4Mul,
    ...vconst(f32Splat(8.5)),
    ...v128.f32x4Add,
    ...v128.i32x4TruncSatF32x4S,
    ...vconst(i32Splat(15)),
    ...v128.i32x4MinS,
  ]
}

/** Eight codes, as 16-bit lanes, of raw vector `r`. */
const codes16 = (r: number) => [...codes(r, v128.i32x4ExtendLowI16x8U), ...codes(r, v128.i32x4ExtendHighI16x8U), ...v128.i16x8NarrowI32x4U]

const SWAPS = [
  [8, 9, 10, 11, 12, 13, 14, 15, 0, 1, 2, 3, 4, 5, 6, 7],
  [4, 5, 6, 7, 0, 1, 2, 3, 12, 13, 14, 15, 8, 9, 10, 11],
  [2, 3, 0, 1, 6, 7, 4, 5, 10, 11, 8, 9, 14, 15, 12, 13],
]

const KERNEL: WasmFunction = {
  name: 'quantize',
  params: [I32],
  results: [I32],
  locals: LOCALS,
  body: [
    ...op.i32Const(IN_AT), ...op.localSet(IN),
    ...op.i32Const(OUT_AT), ...op.localSet(OUT),
    ...op.i32Const(D_AT), ...op.localSet(DP),
    ...op.block,
    ...op.loop,
    ...op.localGet(B), ...op.localGet(N), ...op.i32GeU, ...op.brIf(1),
    // the block's bits and magnitudes
    ...[0, 1, 2, 3].flatMap((k) => [...op.localGet(IN), ...v128.load(16 * k), ...op.localTee(R[k]!), ...vconst(i16Splat(0x7fff)), ...v128.and, ...op.localSet(A[k]!)]),
    // the largest magnitude in every lane, then in lane 0
    ...op.localGet(A[0]!), ...op.localGet(A[1]!), ...v128.i16x8MaxU,
    ...op.localGet(A[2]!), ...op.localGet(A[3]!), ...v128.i16x8MaxU,
    ...v128.i16x8MaxU, ...op.localSet(M),
    ...SWAPS.flatMap((lanes) => [...op.localGet(M), ...op.localGet(M), ...v128.shuffle(lanes), ...op.localGet(M), ...v128.i16x8MaxU, ...op.localSet(M)]),
    ...op.localGet(M), ...v128.i16x8ExtractLaneU(0), ...op.localTee(AMAX),
    // NaN or ±Infinity: stop here, JavaScript names the element
    ...op.i32Const(0x7c00), ...op.i32GeU, ...op.if, ...op.localGet(B), ...op.return, ...op.end,
    // the first element of that magnitude: a mask of equal lanes, its lowest set bit
    ...op.localGet(AMAX), ...v128.i16x8Splat, ...op.localSet(X),
    ...[0, 1, 2, 3].flatMap((k) => [
      ...op.localGet(A[k]!), ...op.localGet(X), ...v128.i16x8Eq, ...v128.i16x8Bitmask,
      ...(k === 0 ? [] : [...op.i32Const(8 * k), ...op.i32Shl, ...op.i32Or]),
    ]),
    ...op.i32Ctz, ...op.i32Const(1), ...op.i32Shl, ...op.localGet(IN), ...op.i32Add, ...op.i32Load16U(), ...op.localSet(H),
    // its value; +0 for a block of zeros (as the JavaScript loops keep it)
    ...op.localGet(H), ...op.i32Const(0x7fff), ...op.i32And, ...op.i32Const(13), ...op.i32Shl, ...op.f32ReinterpretI32,
    ...op.f32Const(2 ** 112), ...op.f32Mul, ...op.localSet(MAX),
    ...op.localGet(H), ...op.i32Const(0x8000), ...op.i32And, ...op.if, ...op.localGet(MAX), ...op.f32Neg, ...op.localSet(MAX), ...op.end,
    ...op.f32Const(0), ...op.localGet(MAX), ...op.localGet(AMAX), ...op.i32Eqz, ...op.select,
    // d = max / −8, stored; id = 1/d (0 when d is 0)
    ...op.f32Const(-8), ...op.f32Div, ...op.localSet(D),
    ...op.localGet(DP), ...op.localGet(D), ...op.f32Store(),
    ...op.f32Const(0), ...op.f32Const(1), ...op.localGet(D), ...op.f32Div, ...op.localGet(D), ...op.f32Const(0), ...op.f32Eq, ...op.select,
    ...op.localSet(ID), ...op.localGet(ID), ...v128.f32x4Splat, ...op.localSet(IDV),
    // codes: elements 0–15 in the low nibbles, 16–31 in the high ones
    ...op.localGet(OUT),
    ...codes16(R[0]!), ...codes16(R[1]!), ...v128.i8x16NarrowI16x8U,
    ...codes16(R[2]!), ...codes16(R[3]!), ...v128.i8x16NarrowI16x8U, ...op.i32Const(4), ...v128.i8x16Shl,
    ...v128.or, ...v128.store(2),
    // next block
    ...op.localGet(IN), ...op.i32Const(64), ...op.i32Add, ...op.localSet(IN),
    ...op.localGet(OUT), ...op.i32Const(18), ...op.i32Add, ...op.localSet(OUT),
    ...op.localGet(DP), ...op.i32Const(4), ...op.i32Add, ...op.localSet(DP),
    ...op.localGet(B), ...op.i32Const(1), ...op.i32Add, ...op.localSet(B),
    ...op.br(0),
    ...op.end,
    ...op.end,
    ...op.i32Const(-1),
  ],
}

/** Quantizes `count` binary16 values `bits[from…]` (whole blocks) into `out` at `outOffset`; returns the first block it refused (NaN, ±Infinity), or −1. */
export type Q4_0SimdKernel = (bits: Uint16Array, from: number, count: number, out: Uint8Array, outOffset: number) => number

let kernel: Q4_0SimdKernel | undefined | null = null

/** The part of the WebAssembly JavaScript API used here (the project's TypeScript libraries do not declare it). */
interface WasmApi {
  validate(bytes: Uint8Array): boolean
  Module: new (bytes: Uint8Array) => object
  Instance: new (module: object) => {exports: {quantize: (blocks: number) => number; memory: {buffer: ArrayBuffer}}}
}

/** The SIMD kernel of this thread (built on first use), or undefined where WebAssembly SIMD is missing. */
export function q4_0SimdKernel(): Q4_0SimdKernel | undefined {
  if (kernel !== null) return kernel
  const bytes = wasmModule(PAGES, [KERNEL])
  const wasm = (globalThis as {WebAssembly?: WasmApi}).WebAssembly
  if (!wasm || !wasm.validate(bytes)) return (kernel = undefined)
  const instance = new wasm.Instance(new wasm.Module(bytes))
  const run = instance.exports.quantize
  const memory = instance.exports.memory.buffer
  const input = new Uint16Array(memory, IN_AT, BATCH * 32)
  const output = new Uint8Array(memory, OUT_AT, BATCH * 18)
  const scales = new Float32Array(memory, D_AT, BATCH)
  kernel = (bits, from, count, out, outOffset) => {
    const blocks = count / 32
    for (let b0 = 0; b0 < blocks; b0 += BATCH) {
      const n = Math.min(BATCH, blocks - b0)
      input.set(bits.subarray(from + b0 * 32, from + (b0 + n) * 32))
      const refused = run(n)
      const done = refused < 0 ? n : refused
      out.set(output.subarray(0, done * 18), outOffset + b0 * 18)
      for (let b = 0, o = outOffset + b0 * 18; b < done; b++, o += 18) {
        const h = numberToF16Bits(scales[b]!)
        out[o] = h & 0xff
        out[o + 1] = h >> 8
      }
      if (refused >= 0) return b0 + refused
    }
    return -1
  }
  return kernel
}
