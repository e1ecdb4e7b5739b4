/**
 * Q4_0 with WebAssembly SIMD, from binary16 bits (what `lora quantize` reads
 * from an F16 model) or from float32 values (what a merge hands over): the
 * same bytes as the JavaScript kernels, several times faster. Per block of 32:
 * - the largest magnitude on the bits (`bits & 0x7fff`, or `& 0x7fffffff` for
 *   float32, orders |x| for finite values), its first position from a lane
 *   mask, `max` that element's value (+0 for a block of zeros), `d = max / −8`
 *   and `id = 1/d` in float32 (what `Math.fround` gives in JavaScript: float64
 *   has more than 2·24 + 2 bits, so rounding a float64 result to float32 is
 *   the float32 result);
 * - binary16 values decoded exactly (`(bits & 0x7fff) << 13` as float32,
 *   times 2^112, sign put back); `q = min(15, trunc(x·id + 8.5))` with float32
 *   multiply and add, narrowed to bytes, element j in the low nibble and
 *   j + 16 in the high one.
 * The kernel writes the 16 code bytes of each block and `d` as float32;
 * JavaScript writes `d`'s f16 bits (`numberToF16Bits`, the one f16 rounding).
 * A block the kernel cannot encode (NaN, ±Infinity, a scale past f16) stops
 * it, and the JavaScript kernel raises the error for that block. Where
 * WebAssembly SIMD is missing, the kernels are undefined and JavaScript does all.
 */
import {numberToF16Bits} from '../dtype.js'
import {F32, I32, V128, WasmFunction, op, v128, wasmModule} from './wasm-binary.js'

/** Blocks per kernel call. */
const BATCH = 4096

const bytesOf16 = (f: (lane: number) => number[]) => Array.from({length: 16 / f(0).length}, (_, i) => f(i)).flat()
const i16Splat = (v: number) => bytesOf16(() => [v & 0xff, (v >> 8) & 0xff])
const i32Splat = (v: number) => bytesOf16(() => [v & 0xff, (v >> 8) & 0xff, (v >> 16) & 0xff, (v >>> 24) & 0xff])
const f32Splat = (v: number) => bytesOf16(() => [...new Uint8Array(Float32Array.of(v).buffer)])
const vconst = (bytes: number[]) => [0xfd, 0x0c, ...bytes]
const f32Bits = (v: number) => new Uint32Array(Float32Array.of(v).buffer)[0]!

/** Largest block magnitude whose scale fits in f16 (65504 · 8, `Q4_0_MAX_ABS`). */
const MAX_ABS_BITS = f32Bits(65504 * 8)

// locals: parameter 0 is the block count
const N = 0
const [B, IN, OUT, DP, AMAX, H] = [1, 2, 3, 4, 5, 6]
const [MAX, D, ID] = [7, 8, 9]
const R = [10, 11, 12, 13, 14, 15, 16, 17] // the raw vectors of a block
const A = [18, 19, 20, 21, 22, 23, 24, 25] // their magnitudes
const [M, IDV, X] = [26, 27, 28]
const LOCALS = [I32, I32, I32, I32, I32, I32, F32, F32, F32, ...Array.from({length: 19}, () => V128)]

/** `min(15, trunc(x · id + 8.5))` of four float32 lanes on the stack. */
const quantizeLanes = [...op.localGet(IDV), ...v128.f32x4Mul, ...vconst(f32Splat(8.5)), ...v128.f32x4Add, ...v128.i32x4TruncSatF32x4S, ...vconst(i32Splat(15)), ...v128.i32x4MinS]

/** Four codes from four binary16 values (`extend` picks the low or high half of raw vector `r`), decoded exactly. */
function codesF16(r: number, extend: readonly number[]): number[] {
  return [
    ...op.localGet(r), ...extend, ...op.localTee(X),
    // |x|: the f16 exponent and mantissa moved into float32's, then scaled by 2^(127 − 15)
    ...vconst(i32Splat(0x7fff)), ...v128.and, ...op.i32Const(13), ...v128.i32x4Shl, ...vconst(f32Splat(2 ** 112)), ...v128.f32x4Mul,
    // the sign bit back
    ...op.localGet(X), ...vconst(i32Splat(0x8000)), ...v128.and, ...op.i32Const(16), ...v128.i32x4Shl, ...v128.or,
    ...quantizeLanes,
  ]
}

/** How a block is laid out in one input kind, and the instructions that differ between them. */
interface InputKind {
  readonly elementBytes: number
  /** Raw vectors per block of 32. */
  readonly vectors: number
  readonly magnitudeMask: number[]
  readonly max: readonly number[]
  readonly swaps: readonly number[][]
  readonly extract: readonly number[]
  /** With the magnitude on the stack: whether the block cannot be encoded here. */
  readonly refuse: readonly number[]
  readonly eq: readonly number[]
  readonly bitmask: readonly number[]
  /** Lanes per raw vector (bits of its mask). */
  readonly lanes: number
  /** With the element's address on the stack: its value as float32. */
  readonly value: readonly number[]
  /** Codes of elements 8k … 8k + 7 as eight 16-bit lanes. */
  codes8(k: number): number[]
}

const F16_INPUT: InputKind = {
  elementBytes: 2,
  vectors: 4,
  magnitudeMask: i16Splat(0x7fff),
  max: v128.i16x8MaxU,
  swaps: [
    [8, 9, 10, 11, 12, 13, 14, 15, 0, 1, 2, 3, 4, 5, 6, 7],
    [4, 5, 6, 7, 0, 1, 2, 3, 12, 13, 14, 15, 8, 9, 10, 11],
    [2, 3, 0, 1, 6, 7, 4, 5, 10, 11, 8, 9, 14, 15, 12, 13],
  ],
  extract: v128.i16x8ExtractLaneU(0),
  refuse: [...op.i32Const(0x7c00), ...op.i32GeU],
  eq: v128.i16x8Eq,
  bitmask: v128.i16x8Bitmask,
  lanes: 8,
  value: [
    ...op.i32Load16U(), ...op.localTee(H), ...op.i32Const(0x7fff), ...op.i32And, ...op.i32Const(13), ...op.i32Shl, ...op.f32ReinterpretI32,
    ...op.f32Const(2 ** 112), ...op.f32Mul, ...op.localSet(MAX),
    ...op.localGet(H), ...op.i32Const(0x8000), ...op.i32And, ...op.if, ...op.localGet(MAX), ...op.f32Neg, ...op.localSet(MAX), ...op.end,
    ...op.localGet(MAX),
  ],
  codes8: (k) => [...codesF16(R[k]!, v128.i32x4ExtendLowI16x8U), ...codesF16(R[k]!, v128.i32x4ExtendHighI16x8U), ...v128.i16x8NarrowI32x4U],
}

const F32_INPUT: InputKind = {
  elementBytes: 4,
  vectors: 8,
  magnitudeMask: i32Splat(0x7fffffff),
  max: v128.i32x4MaxU,
  swaps: [
    [8, 9, 10, 11, 12, 13, 14, 15, 0, 1, 2, 3, 4, 5, 6, 7],
    [4, 5, 6, 7, 0, 1, 2, 3, 12, 13, 14, 15, 8, 9, 10, 11],
  ],
  extract: v128.i32x4ExtractLane(0),
  // NaN and ±Infinity have larger bits than any finite magnitude
  refuse: [...op.i32Const(MAX_ABS_BITS | 0), ...op.i32GtU],
  eq: v128.i32x4Eq,
  bitmask: v128.i32x4Bitmask,
  lanes: 4,
  value: op.f32Load(),
  codes8: (k) => [...op.localGet(R[2 * k]!), ...quantizeLanes, ...op.localGet(R[2 * k + 1]!), ...quantizeLanes, ...v128.i16x8NarrowI32x4U],
}

/** Where the kernel's memory holds a batch: input, codes (18-byte blocks), scales. */
function layout(input: InputKind): {inAt: number; outAt: number; dAt: number; pages: number} {
  const outAt = BATCH * 32 * input.elementBytes
  const dAt = outAt + BATCH * 18
  return {inAt: 0, outAt, dAt, pages: Math.ceil((dAt + BATCH * 4) / 65536)}
}

function kernelFunction(input: InputKind): WasmFunction {
  const {inAt, outAt, dAt} = layout(input)
  const vectors = Array.from({length: input.vectors}, (_, k) => k)
  // a tree of maxima over the block's magnitudes
  const maxOf = (ks: number[]): number[] => (ks.length === 1 ? op.localGet(A[ks[0]!]!) : [...maxOf(ks.slice(0, ks.length / 2)), ...maxOf(ks.slice(ks.length / 2)), ...input.max])
  return {
    name: 'quantize',
    params: [I32],
    results: [I32],
    locals: LOCALS,
    body: [
      ...op.i32Const(inAt), ...op.localSet(IN),
      ...op.i32Const(outAt), ...op.localSet(OUT),
      ...op.i32Const(dAt), ...op.localSet(DP),
      ...op.block,
      ...op.loop,
      ...op.localGet(B), ...op.localGet(N), ...op.i32GeU, ...op.brIf(1),
      // the block's vectors and magnitudes
      ...vectors.flatMap((k) => [...op.localGet(IN), ...v128.load(16 * k), ...op.localTee(R[k]!), ...vconst(input.magnitudeMask), ...v128.and, ...op.localSet(A[k]!)]),
      // the largest magnitude in every lane, then in lane 0
      ...maxOf(vectors), ...op.localSet(M),
      ...input.swaps.flatMap((lanes) => [...op.localGet(M), ...op.localGet(M), ...v128.shuffle(lanes), ...op.localGet(M), ...input.max, ...op.localSet(M)]),
      ...op.localGet(M), ...input.extract, ...op.localTee(AMAX),
      // a block the JavaScript kernel refuses, naming the element: stop here
      ...input.refuse, ...op.if, ...op.localGet(B), ...op.return, ...op.end,
      // the first element of that magnitude: a mask of equal lanes, its lowest set bit
      ...op.localGet(AMAX), ...(input.lanes === 8 ? v128.i16x8Splat : v128.i32x4Splat), ...op.localSet(X),
      ...vectors.flatMap((k) => [
        ...op.localGet(A[k]!), ...op.localGet(X), ...input.eq, ...input.bitmask,
        ...(k === 0 ? [] : [...op.i32Const(input.lanes * k), ...op.i32Shl, ...op.i32Or]),
      ]),
      ...op.i32Ctz, ...op.i32Const(Math.log2(input.elementBytes)), ...op.i32Shl, ...op.localGet(IN), ...op.i32Add,
      // its value; +0 for a block of zeros (as the JavaScript loops keep it)
      ...input.value, ...op.localSet(MAX),
      ...op.f32Const(0), ...op.localGet(MAX), ...op.localGet(AMAX), ...op.i32Eqz, ...op.select,
      // d = max / −8, stored; id = 1/d (0 when d is 0)
      ...op.f32Const(-8), ...op.f32Div, ...op.localSet(D),
      ...op.localGet(DP), ...op.localGet(D), ...op.f32Store(),
      ...op.f32Const(0), ...op.f32Const(1), ...op.localGet(D), ...op.f32Div, ...op.localGet(D), ...op.f32Const(0), ...op.f32Eq, ...op.select,
      ...op.localSet(ID), ...op.localGet(ID), ...v128.f32x4Splat, ...op.localSet(IDV),
      // codes: elements 0–15 in the low nibbles, 16–31 in the high ones
      ...op.localGet(OUT),
      ...input.codes8(0), ...input.codes8(1), ...v128.i8x16NarrowI16x8U,
      ...input.codes8(2), ...input.codes8(3), ...v128.i8x16NarrowI16x8U, ...op.i32Const(4), ...v128.i8x16Shl,
      ...v128.or, ...v128.store(2),
      // next block
      ...op.localGet(IN), ...op.i32Const(32 * input.elementBytes), ...op.i32Add, ...op.localSet(IN),
      ...op.localGet(OUT), ...op.i32Const(18), ...op.i32Add, ...op.localSet(OUT),
      ...op.localGet(DP), ...op.i32Const(4), ...op.i32Add, ...op.localSet(DP),
      ...op.localGet(B), ...op.i32Const(1), ...op.i32Add, ...op.localSet(B),
      ...op.br(0),
      ...op.end,
      ...op.end,
      ...op.i32Const(-1),
    ],
  }
}

/**
 * Quantizes `count` values `values[from…]` (whole blocks) into `out` at `outOffset`; returns the first
 * block it refused (NaN, ±Infinity, a scale past f16), or −1 when all are written.
 */
export type Q4_0SimdKernel<T extends Uint16Array | Float32Array> = (values: T, from: number, count: number, out: Uint8Array, outOffset: number) => number

/** The part of the WebAssembly JavaScript API used here (the project's TypeScript libraries do not declare it). */
interface WasmApi {
  validate(bytes: Uint8Array): boolean
  Module: new (bytes: Uint8Array) => object
  Instance: new (module: object) => {exports: {quantize: (blocks: number) => number; memory: {buffer: ArrayBuffer}}}
}

/** The kernel for one input kind on this thread, or undefined without WebAssembly SIMD. */
function buildKernel<T extends Uint16Array | Float32Array>(input: InputKind, view: (memory: ArrayBuffer, at: number, length: number) => {set(values: ArrayLike<number>): void}): Q4_0SimdKernel<T> | undefined {
  const {inAt, outAt, dAt, pages} = layout(input)
  const bytes = wasmModule(pages, [kernelFunction(input)])
  const wasm = (globalThis as {WebAssembly?: WasmApi}).WebAssembly
  if (!wasm || !wasm.validate(bytes)) return undefined
  const instance = new wasm.Instance(new wasm.Module(bytes))
  const run = instance.exports.quantize
  const memory = instance.exports.memory.buffer
  const staged = view(memory, inAt, BATCH * 32)
  const codes = new Uint8Array(memory, outAt, BATCH * 18)
  const scales = new Float32Array(memory, dAt, BATCH)
  return (values, from, count, out, outOffset) => {
    const blocks = count / 32
    for (let b0 = 0; b0 < blocks; b0 += BATCH) {
      const n = Math.min(BATCH, blocks - b0)
      staged.set(values.subarray(from + b0 * 32, from + (b0 + n) * 32))
      const refused = run(n)
      const done = refused < 0 ? n : refused
      out.set(codes.subarray(0, done * 18), outOffset + b0 * 18)
      for (let b = 0, o = outOffset + b0 * 18; b < done; b++, o += 18) {
        const h = numberToF16Bits(scales[b]!)
        out[o] = h & 0xff
        out[o + 1] = h >> 8
      }
      if (refused >= 0) return b0 + refused
    }
    return -1
  }
}

let f16Kernel: Q4_0SimdKernel<Uint16Array> | undefined | null = null
let f32Kernel: Q4_0SimdKernel<Float32Array> | undefined | null = null

/** The binary16 kernel of this thread (built on first use), or undefined where WebAssembly SIMD is missing. */
export function q4_0SimdKernelF16(): Q4_0SimdKernel<Uint16Array> | undefined {
  if (f16Kernel === null) f16Kernel = buildKernel<Uint16Array>(F16_INPUT, (m, at, n) => new Uint16Array(m, at, n))
  return f16Kernel
}

/** The float32 kernel of this thread (built on first use), or undefined where WebAssembly SIMD is missing. */
export function q4_0SimdKernelF32(): Q4_0SimdKernel<Float32Array> | undefined {
  if (f32Kernel === null) f32Kernel = buildKernel<Float32Array>(F32_INPUT, (m, at, n) => new Float32Array(m, at, n))
  return f32Kernel
}
