/**
 * llama.cpp's Q4_0 (`quantize_row_q4_0_ref` / `dequantize_row_q4_0`).
 *
 * Blocks of 32 consecutive elements along each row (GGML's ne[0], the
 * fastest-varying dimension). Per block: `v` is the element of largest
 * magnitude (sign kept; the first one on ties), `d = v / −8` stored as f16,
 * and each element gets `q = min(15, trunc(x · (1/d) + 8.5))` computed in
 * float32 with the reciprocal of the float32 `d`, as llama.cpp does. Layout:
 * 2 bytes of `d`, then 16 bytes where byte j holds element j in the low
 * nibble and element j + 16 in the high nibble: 18 bytes per block.
 * Value = `(q − 8) · d` in float32.
 *
 * Stored in GGUF as GGML type Q4_0 (`Q4_0_SCHEME`); a model of Q4_0 weights
 * has `general.file_type` 2 (llama.cpp's `LLAMA_FTYPE_MOSTLY_Q4_0`).
 */
import {InputError} from '../errors.js'
import {f16ToF32Table, numberToF16Bits} from '../dtype.js'
import {GgmlBlockEncoder, GgufScheme, ggmlRowCodec, notFiniteError, notFiniteF16, twoDProblem} from './quant-scheme.js'
import {q4_0SimdKernelF16, q4_0SimdKernelF32} from './q4-0-simd.js'

/** Elements per Q4_0 block (GGML's QK4_0). */
export const Q4_0_BLOCK_SIZE = 32
/** Bytes per Q4_0 block: f16 d + 16 bytes of nibbles. */
export const Q4_0_BYTES_PER_BLOCK = 18
/** Largest block magnitude whose scale `d = v/−8` fits in f16 (65504 · 8). */
export const Q4_0_MAX_ABS = 65504 * 8

/** The precondition of Q4_0 for rows of `rowSize` elements, as a sentence, or undefined when it holds. */
export function q4_0RowProblem(rowSize: number): string | undefined {
  return rowSize % Q4_0_BLOCK_SIZE === 0 ? undefined : `row size (${rowSize}) is not a multiple of Q4_0 block size (${Q4_0_BLOCK_SIZE})`
}

/**
 * Quantize whole blocks: `values.length` must be a multiple of 32. Writes
 * `values.length / 32 · 18` bytes into `out` at `outOffset`. Runs the WebAssembly SIMD kernel
 * (`q4-0-simd.ts`) where there is one, `quantizeQ4_0BlocksJs` otherwise (and for the error of a
 * block the kernel refuses): the same bytes either way.
 * @param firstIndex flat index of values[0] in the tensor, for error messages
 * @throws InputError QUANT_NOT_FINITE for NaN/±Infinity, QUANT_SCALE_OVERFLOW when |v| > 524032
 */
export function quantizeQ4_0Blocks(values: Float32Array, out: Uint8Array, outOffset = 0, firstIndex = 0): void {
  if (values.length % Q4_0_BLOCK_SIZE !== 0) throw new RangeError(`q4_0: ${values.length} values is not a whole number of ${Q4_0_BLOCK_SIZE}-element blocks`)
  const simd = q4_0SimdKernelF32()
  if (!simd) return quantizeQ4_0BlocksJs(values, out, outOffset, firstIndex)
  const refused = simd(values, 0, values.length, out, outOffset)
  if (refused < 0) return
  const skip = refused * Q4_0_BLOCK_SIZE
  quantizeQ4_0BlocksJs(values.subarray(skip), out, outOffset + refused * Q4_0_BYTES_PER_BLOCK, firstIndex + skip)
}

/**
 * The JavaScript form of `quantizeQ4_0Blocks` (llama.cpp's `quantize_row_q4_0_ref` written out).
 * @throws InputError QUANT_NOT_FINITE for NaN/±Infinity, QUANT_SCALE_OVERFLOW when |v| > 524032
 */
export function quantizeQ4_0BlocksJs(values: Float32Array, out: Uint8Array, outOffset = 0, firstIndex = 0): void {
  if (values.length % Q4_0_BLOCK_SIZE !== 0) throw new RangeError(`q4_0: ${values.length} values is not a whole number of ${Q4_0_BLOCK_SIZE}-element blocks`)
  const blocks = values.length / Q4_0_BLOCK_SIZE
  // the hot loop of `lora quantize`: no allocation, integer indices, and the
  // clamp and truncation done with int32 operations (x·id + 8.5 lies in about
  // [0.5, 16.5], where `| 0` is trunc)
  for (let b = 0, s = 0, o = outOffset; b < blocks; b++, s += Q4_0_BLOCK_SIZE, o += Q4_0_BYTES_PER_BLOCK) {
    let amax = 0
    let max = 0
    for (let j = s; j < s + Q4_0_BLOCK_SIZE; j++) {
      const v = values[j]!
      const a = Math.abs(v)
      if (!(a <= amax)) {
        if (a === Infinity || a !== a) throw notFiniteError(firstIndex + j, v)
        amax = a
        max = v
      }
    }
    if (amax > Q4_0_MAX_ABS) {
      throw new InputError('QUANT_SCALE_OVERFLOW', `block at element ${firstIndex + s} has |v| = ${amax}, too large for Q4_0's f16 scale (limit ${Q4_0_MAX_ABS})`)
    }
    const d = Math.fround(max / -8)
    const id = d === 0 ? 0 : Math.fround(1 / d)
    const h = numberToF16Bits(d)
    out[o] = h & 0xff
    out[o + 1] = h >> 8
    for (let j = 0; j < 16; j++) {
      const q0 = Math.fround(Math.fround(values[s + j]! * id) + 8.5) | 0
      const q1 = Math.fround(Math.fround(values[s + 16 + j]! * id) + 8.5) | 0
      out[o + 2 + j] = (q0 < 15 ? q0 : 15) | ((q1 < 15 ? q1 : 15) << 4)
    }
  }
}

/**
 * `quantizeQ4_0Blocks` on `count` binary16 values `bits[from…]` (whole blocks), without a float32 copy:
 * the same bytes and errors as `quantizeQ4_0Blocks` on the decoded values. Runs the WebAssembly SIMD
 * kernel (`q4-0-simd.ts`) where there is one, `quantizeQ4_0BlocksF16Js` otherwise (and for the error
 * of a block the kernel refuses).
 * @throws InputError QUANT_NOT_FINITE for NaN/±Infinity (naming the first in the block)
 */
export function quantizeQ4_0BlocksF16(bits: Uint16Array, from: number, count: number, out: Uint8Array, outOffset = 0, firstIndex = 0): void {
  if (count % Q4_0_BLOCK_SIZE !== 0) throw new RangeError(`q4_0: ${count} values is not a whole number of ${Q4_0_BLOCK_SIZE}-element blocks`)
  const simd = q4_0SimdKernelF16()
  if (!simd) return quantizeQ4_0BlocksF16Js(bits, from, count, out, outOffset, firstIndex)
  const refused = simd(bits, from, count, out, outOffset)
  if (refused < 0) return
  const skip = refused * Q4_0_BLOCK_SIZE
  quantizeQ4_0BlocksF16Js(bits, from + skip, count - skip, out, outOffset + refused * Q4_0_BYTES_PER_BLOCK, firstIndex + skip)
}

/**
 * The JavaScript form of `quantizeQ4_0BlocksF16`: the largest magnitude is found on the bits (|x| orders
 * as `bits & 0x7fff` for finite values, the first one kept on ties), each value read through the f16
 * table once.
 * @throws InputError QUANT_NOT_FINITE for NaN/±Infinity (naming the first in the block)
 */
export function quantizeQ4_0BlocksF16Js(bits: Uint16Array, from: number, count: number, out: Uint8Array, outOffset = 0, firstIndex = 0): void {
  if (count % Q4_0_BLOCK_SIZE !== 0) throw new RangeError(`q4_0: ${count} values is not a whole number of ${Q4_0_BLOCK_SIZE}-element blocks`)
  const f16 = f16ToF32Table()
  for (let s = from, end = from + count, o = outOffset; s < end; s += Q4_0_BLOCK_SIZE, o += Q4_0_BYTES_PER_BLOCK) {
    // the largest magnitude without a branch per element, then the first element that has it
    let amax = 0
    for (let j = s; j < s + Q4_0_BLOCK_SIZE; j++) {
      const a = bits[j]! & 0x7fff
      amax = a > amax ? a : amax
    }
    if (amax >= 0x7c00) throw notFiniteF16(bits, s, Q4_0_BLOCK_SIZE, firstIndex + (s - from))
    let at = s
    while ((bits[at]! & 0x7fff) !== amax) at++
    // a block of zeros keeps max = +0, as the float32 loop does
    const max = amax === 0 ? 0 : f16[bits[at]!]!
    const d = Math.fround(max / -8)
    const id = d === 0 ? 0 : Math.fround(1 / d)
    const h = numberToF16Bits(d)
    out[o] = h & 0xff
    out[o + 1] = h >> 8
    for (let j = 0; j < 16; j++) {
      const q0 = Math.fround(Math.fround(f16[bits[s + j]!]! * id) + 8.5) | 0
      const q1 = Math.fround(Math.fround(f16[bits[s + 16 + j]!]! * id) + 8.5) | 0
      out[o + 2 + j] = (q0 < 15 ? q0 : 15) | ((q1 < 15 ? q1 : 15) << 4)
    }
  }
}

/** Quantize a whole tensor whose element count is a multiple of 32 (rows of a multiple of 32). */
export function quantizeQ4_0(values: Float32Array): Uint8Array {
  const out = new Uint8Array((values.length / Q4_0_BLOCK_SIZE) * Q4_0_BYTES_PER_BLOCK)
  quantizeQ4_0Blocks(values, out)
  return out
}

/** Streaming Q4_0 encoder: push whole rows (any number at a time), then `finish()`. */
export class Q4_0Encoder extends GgmlBlockEncoder {
  constructor(count: number) {
    super('q4_0', count, Q4_0_BLOCK_SIZE, Q4_0_BYTES_PER_BLOCK, quantizeQ4_0Blocks)
  }
}

/**
 * Decode `blockCount` blocks starting at byte `byteOffset` of `bytes`:
 * `(q − 8) · d` in float32.
 */
export function dequantizeQ4_0(bytes: Uint8Array, byteOffset = 0, blockCount = (bytes.length - byteOffset) / Q4_0_BYTES_PER_BLOCK, out: Float32Array = new Float32Array(blockCount * Q4_0_BLOCK_SIZE)): Float32Array {
  const f16 = f16ToF32Table()
  for (let b = 0; b < blockCount; b++) {
    const o = byteOffset + b * Q4_0_BYTES_PER_BLOCK
    const d = f16[bytes[o]! | (bytes[o + 1]! << 8)]!
    const s = b * Q4_0_BLOCK_SIZE
    for (let j = 0; j < 16; j++) {
      const q = bytes[o + 2 + j]!
      out[s + j] = Math.fround(((q & 0x0f) - 8) * d)
      out[s + 16 + j] = Math.fround(((q >> 4) - 8) * d)
    }
  }
  return out
}

/** llama.cpp's `LLAMA_FTYPE_MOSTLY_Q4_0`. */
export const Q4_0_FILE_TYPE = 2

/** Q4_0 as a scheme: blocks of 32 along each row, stored as GGML type Q4_0 in GGUF. */
export const Q4_0_SCHEME: GgufScheme<Uint8Array> = Object.freeze<GgufScheme<Uint8Array>>({
  name: 'q4_0',
  description: "llama.cpp's Q4_0, in a GGUF file for llama.cpp's tools",
  format: 'gguf',
  ggmlType: 'Q4_0',
  fileType: Q4_0_FILE_TYPE,
  defaultBlockSize: Q4_0_BLOCK_SIZE,
  blockSizeFlag: '--block-size',
  blockSizeHelp: String(Q4_0_BLOCK_SIZE),
  blocksAlong: 'rows',
  doubleQuant: false,
  bits: 4,
  bytesPerBlock: () => Q4_0_BYTES_PER_BLOCK,
  blockSizeProblem: (blockSize: number) => (blockSize === Q4_0_BLOCK_SIZE ? undefined : `Q4_0 blocks are always ${Q4_0_BLOCK_SIZE} elements (got ${blockSize})`),
  shapeProblem: (shape: readonly number[]) => twoDProblem(shape) ?? q4_0RowProblem(shape[1]!),
  rowAlignment: () => 1,
  codec: ggmlRowCodec(Q4_0_BLOCK_SIZE, Q4_0_BYTES_PER_BLOCK, quantizeQ4_0Blocks, quantizeQ4_0BlocksF16),
  decoder(encoded) {
    const blocksPerRow = encoded.shape[1] / Q4_0_BLOCK_SIZE
    return (start, count, out) => dequantizeQ4_0(encoded.data, start * blocksPerRow * Q4_0_BYTES_PER_BLOCK, count * blocksPerRow, out)
  },
  storedParts: (name, encoded) => [{name, data: encoded.data}],
  fromGguf: (bytes, shape) => ({scheme: 'q4_0', shape, data: bytes}),
})
