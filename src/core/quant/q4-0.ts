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
import {GgmlBlockEncoder, GgufScheme, notFiniteError, twoDProblem} from './quant-scheme.js'

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
 * `values.length / 32 · 18` bytes into `out` at `outOffset`.
 * @param firstIndex flat index of values[0] in the tensor, for error messages
 * @throws InputError QUANT_NOT_FINITE for NaN/±Infinity, QUANT_SCALE_OVERFLOW when |v| > 524032
 */
export function quantizeQ4_0Blocks(values: Float32Array, out: Uint8Array, outOffset = 0, firstIndex = 0): void {
  if (values.length % Q4_0_BLOCK_SIZE !== 0) throw new RangeError(`q4_0: ${values.length} values is not a whole number of ${Q4_0_BLOCK_SIZE}-element blocks`)
  const blocks = values.length / Q4_0_BLOCK_SIZE
  for (let b = 0; b < blocks; b++) {
    const s = b * Q4_0_BLOCK_SIZE
    let amax = 0
    let max = 0
    for (let j = 0; j < Q4_0_BLOCK_SIZE; j++) {
      const v = values[s + j]!
      const a = Math.abs(v)
      if (!(a <= amax)) {
        if (!Number.isFinite(a)) throw notFiniteError(firstIndex + s + j, v)
        amax = a
        max = v
      }
    }
    if (amax > Q4_0_MAX_ABS) {
      throw new InputError('QUANT_SCALE_OVERFLOW', `block at element ${firstIndex + s} has |v| = ${amax}, too large for Q4_0's f16 scale (limit ${Q4_0_MAX_ABS})`)
    }
    const d = Math.fround(max / -8)
    const id = d === 0 ? 0 : Math.fround(1 / d)
    const o = outOffset + b * Q4_0_BYTES_PER_BLOCK
    const h = numberToF16Bits(d)
    out[o] = h & 0xff
    out[o + 1] = h >> 8
    for (let j = 0; j < 16; j++) {
      const x0 = Math.fround(values[s + j]! * id)
      const x1 = Math.fround(values[s + 16 + j]! * id)
      const q0 = Math.min(15, Math.trunc(Math.fround(x0 + 8.5)))
      const q1 = Math.min(15, Math.trunc(Math.fround(x1 + 8.5)))
      out[o + 2 + j] = q0 | (q1 << 4)
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
  encoder: ([rows, cols]: readonly [number, number]) => new Q4_0Encoder(rows * cols),
  decoder(encoded) {
    const blocksPerRow = encoded.shape[1] / Q4_0_BLOCK_SIZE
    return (start, count, out) => dequantizeQ4_0(encoded.data, start * blocksPerRow * Q4_0_BYTES_PER_BLOCK, count * blocksPerRow, out)
  },
  storedParts: (name, encoded) => [{name, data: encoded.data}],
  fromGguf: (bytes, shape) => ({scheme: 'q4_0', shape, data: bytes}),
})
