/**
 * llama.cpp's Q8_0 (`quantize_row_q8_0_ref` / `dequantize_row_q8_0`).
 *
 * Blocks of 32 consecutive elements along each row (GGML's ne[0]). Per
 * block, in float32 as llama.cpp computes it: `amax` = the largest |x|,
 * `d = amax / 127`, stored as f16 (round to nearest even), and each element
 * gets `q = round(x · (1/d))` (round half away from zero, C's `roundf`) with
 * the reciprocal of the float32 `d`; an all-zero block has d = 0 and q = 0.
 * Layout: 2 bytes of `d` (little-endian f16), then the 32 codes as int8:
 * 34 bytes per block. Value = `q · d` in float32.
 *
 * Stored in GGUF as GGML type Q8_0 (`Q8_0_SCHEME`); a model of Q8_0 weights
 * has `general.file_type` 7 (llama.cpp's `LLAMA_FTYPE_MOSTLY_Q8_0`).
 */
import {f16ToF32Table, numberToF16Bits} from '../dtype.js'
import {InputError} from '../errors.js'
import {GgmlBlockEncoder, GgufScheme, ggmlRowCodec, notFiniteError, notFiniteF16, twoDProblem} from './quant-scheme.js'

/** Elements per Q8_0 block (GGML's QK8_0). */
export const Q8_0_BLOCK_SIZE = 32
/** Bytes per Q8_0 block: f16 d + 32 int8. */
export const Q8_0_BYTES_PER_BLOCK = 34
/** Largest block magnitude whose scale `d = amax/127` fits in f16 (65504 · 127). */
export const Q8_0_MAX_ABS = 65504 * 127
/** llama.cpp's `LLAMA_FTYPE_MOSTLY_Q8_0`. */
export const Q8_0_FILE_TYPE = 7

/** The precondition of Q8_0 for rows of `rowSize` elements, as a sentence, or undefined when it holds. */
export function q8_0RowProblem(rowSize: number): string | undefined {
  return rowSize % Q8_0_BLOCK_SIZE === 0 ? undefined : `row size (${rowSize}) is not a multiple of Q8_0 block size (${Q8_0_BLOCK_SIZE})`
}

/** C's `roundf`: halfway cases away from zero. */
function roundHalfAway(x: number): number {
  return x < 0 ? -Math.round(-x) : Math.round(x)
}

/**
 * Quantize whole blocks: `values.length` must be a multiple of 32. Writes
 * `values.length / 32 · 34` bytes into `out` at `outOffset`.
 * @param firstIndex flat index of values[0] in the tensor, for error messages
 * @throws InputError QUANT_NOT_FINITE for NaN/±Infinity, QUANT_SCALE_OVERFLOW when amax > 8319008
 */
export function quantizeQ8_0Blocks(values: Float32Array, out: Uint8Array, outOffset = 0, firstIndex = 0): void {
  if (values.length % Q8_0_BLOCK_SIZE !== 0) throw new RangeError(`q8_0: ${values.length} values is not a whole number of ${Q8_0_BLOCK_SIZE}-element blocks`)
  const codes = new Int8Array(out.buffer, out.byteOffset, out.byteLength)
  const blocks = values.length / Q8_0_BLOCK_SIZE
  for (let b = 0; b < blocks; b++) {
    const s = b * Q8_0_BLOCK_SIZE
    let amax = 0
    for (let j = 0; j < Q8_0_BLOCK_SIZE; j++) {
      const a = Math.abs(values[s + j]!)
      if (!(a <= amax)) {
        if (!Number.isFinite(a)) throw notFiniteError(firstIndex + s + j, values[s + j]!, 8)
        amax = a
      }
    }
    if (amax > Q8_0_MAX_ABS) {
      throw new InputError('QUANT_SCALE_OVERFLOW', `block at element ${firstIndex + s} has |v| = ${amax}, too large for Q8_0's f16 scale (limit ${Q8_0_MAX_ABS})`)
    }
    const d = Math.fround(amax / 127)
    const id = d === 0 ? 0 : Math.fround(1 / d)
    const o = outOffset + b * Q8_0_BYTES_PER_BLOCK
    const h = numberToF16Bits(d)
    out[o] = h & 0xff
    out[o + 1] = h >> 8
    for (let j = 0; j < Q8_0_BLOCK_SIZE; j++) codes[o + 2 + j] = roundHalfAway(Math.fround(values[s + j]! * id))
  }
}

/**
 * `quantizeQ8_0Blocks` on `count` binary16 values `bits[from…]` (whole blocks), without a float32 copy
 * (the largest magnitude found on the bits): the same bytes and errors.
 * @throws InputError QUANT_NOT_FINITE for NaN/±Infinity (naming the first in the block)
 */
export function quantizeQ8_0BlocksF16(bits: Uint16Array, from: number, count: number, out: Uint8Array, outOffset = 0, firstIndex = 0): void {
  if (count % Q8_0_BLOCK_SIZE !== 0) throw new RangeError(`q8_0: ${count} values is not a whole number of ${Q8_0_BLOCK_SIZE}-element blocks`)
  const f16 = f16ToF32Table()
  const codes = new Int8Array(out.buffer, out.byteOffset, out.byteLength)
  for (let s = from, end = from + count, o = outOffset; s < end; s += Q8_0_BLOCK_SIZE, o += Q8_0_BYTES_PER_BLOCK) {
    let top = 0
    for (let j = s; j < s + Q8_0_BLOCK_SIZE; j++) {
      const a = bits[j]! & 0x7fff
      top = a > top ? a : top
    }
    if (top >= 0x7c00) throw notFiniteF16(bits, s, Q8_0_BLOCK_SIZE, firstIndex + (s - from), 8)
    const d = Math.fround(f16[top]! / 127)
    const id = d === 0 ? 0 : Math.fround(1 / d)
    const h = numberToF16Bits(d)
    out[o] = h & 0xff
    out[o + 1] = h >> 8
    for (let j = 0; j < Q8_0_BLOCK_SIZE; j++) codes[o + 2 + j] = roundHalfAway(Math.fround(f16[bits[s + j]!]! * id))
  }
}

/** Quantize a whole tensor whose element count is a multiple of 32 (rows of a multiple of 32). */
export function quantizeQ8_0(values: Float32Array): Uint8Array {
  const out = new Uint8Array((values.length / Q8_0_BLOCK_SIZE) * Q8_0_BYTES_PER_BLOCK)
  quantizeQ8_0Blocks(values, out)
  return out
}

/** Streaming Q8_0 encoder: push whole rows (any number at a time), then `finish()`. */
export class Q8_0Encoder extends GgmlBlockEncoder {
  constructor(count: number) {
    super('q8_0', count, Q8_0_BLOCK_SIZE, Q8_0_BYTES_PER_BLOCK, quantizeQ8_0Blocks)
  }
}

/** Decode `blockCount` blocks starting at byte `byteOffset` of `bytes`: `q · d` in float32. */
export function dequantizeQ8_0(bytes: Uint8Array, byteOffset = 0, blockCount = (bytes.length - byteOffset) / Q8_0_BYTES_PER_BLOCK, out: Float32Array = new Float32Array(blockCount * Q8_0_BLOCK_SIZE)): Float32Array {
  const f16 = f16ToF32Table()
  const codes = new Int8Array(bytes.buffer, bytes.byteOffset, bytes.byteLength)
  for (let b = 0; b < blockCount; b++) {
    const o = byteOffset + b * Q8_0_BYTES_PER_BLOCK
    const d = f16[bytes[o]! | (bytes[o + 1]! << 8)]!
    const s = b * Q8_0_BLOCK_SIZE
    for (let j = 0; j < Q8_0_BLOCK_SIZE; j++) out[s + j] = Math.fround(codes[o + 2 + j]! * d)
  }
  return out
}

/** Q8_0 as a scheme: blocks of 32 along each row, stored as GGML type Q8_0 in GGUF. */
export const Q8_0_SCHEME: GgufScheme<Uint8Array> = Object.freeze<GgufScheme<Uint8Array>>({
  name: 'q8_0',
  description: "llama.cpp's Q8_0 (8 bits), in a GGUF file for llama.cpp's tools",
  format: 'gguf',
  ggmlType: 'Q8_0',
  fileType: Q8_0_FILE_TYPE,
  defaultBlockSize: Q8_0_BLOCK_SIZE,
  blockSizeFlag: '--block-size',
  blockSizeHelp: String(Q8_0_BLOCK_SIZE),
  blocksAlong: 'rows',
  doubleQuant: false,
  bits: 8,
  bytesPerBlock: () => Q8_0_BYTES_PER_BLOCK,
  blockSizeProblem: (blockSize: number) => (blockSize === Q8_0_BLOCK_SIZE ? undefined : `Q8_0 blocks are always ${Q8_0_BLOCK_SIZE} elements (got ${blockSize})`),
  shapeProblem: (shape: readonly number[]) => twoDProblem(shape) ?? q8_0RowProblem(shape[1]!),
  rowAlignment: () => 1,
  codec: ggmlRowCodec(Q8_0_BLOCK_SIZE, Q8_0_BYTES_PER_BLOCK, quantizeQ8_0Blocks, quantizeQ8_0BlocksF16),
  decoder(encoded) {
    const blocksPerRow = encoded.shape[1] / Q8_0_BLOCK_SIZE
    return (start, count, out) => dequantizeQ8_0(encoded.data, start * blocksPerRow * Q8_0_BYTES_PER_BLOCK, count * blocksPerRow, out)
  },
  storedParts: (name, encoded) => [{name, data: encoded.data}],
  fromGguf: (bytes, shape) => ({scheme: 'q8_0', shape, data: bytes}),
})
