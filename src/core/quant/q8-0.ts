/**
 * llama.cpp's Q8_0 (`quantize_row_q8_0_ref` / `dequantize_row_q8_0`).
 *
 * Blocks of 32 consecutive elements along each row (GGML's ne[0]). Per
 * block: `amax` = the largest magnitude, `d = amax / 127` in float32, stored
 * as f16; each element `q = roundf(x · (1/d))` (half away from zero) as int8.
 * Layout: 2 bytes of `d`, then the 32 int8 values: 34 bytes per block.
 * Value = `q · d` in float32 (d read back from its f16).
 *
 * Used for GGUF LoRA adapters (`lora export --dtype q8_0`) and read from
 * GGUF bases (`--base model.gguf` holding Q8_0 tensors).
 */
import {InputError} from '../errors.js'
import {f16BitsToNumber, f32BitsToF16Bits} from '../dtype.js'

export const Q8_0_BLOCK_SIZE = 32
export const Q8_0_BYTES_PER_BLOCK = 34
/** Largest block magnitude whose scale `d = amax/127` fits in f16 (65504 · 127). */
export const Q8_0_MAX_ABS = 65504 * 127

const f32 = new Float32Array(1)
const u32 = new Uint32Array(f32.buffer)

/** The precondition of Q8_0 for rows of `rowSize` elements, as a sentence, or undefined when it holds. */
export function q8_0RowProblem(rowSize: number): string | undefined {
  return rowSize % Q8_0_BLOCK_SIZE === 0 ? undefined : `row size (${rowSize}) is not a multiple of Q8_0 block size (${Q8_0_BLOCK_SIZE})`
}

/**
 * Quantize whole blocks (`values.length` a multiple of 32) into `out` at `outOffset`.
 * @throws InputError QUANT_NOT_FINITE for NaN/±Infinity, QUANT_SCALE_OVERFLOW when a block's scale overflows f16
 */
export function quantizeQ8_0(values: Float32Array, out = new Uint8Array((values.length / Q8_0_BLOCK_SIZE) * Q8_0_BYTES_PER_BLOCK), outOffset = 0): Uint8Array {
  if (values.length % Q8_0_BLOCK_SIZE !== 0) throw new RangeError(`q8_0: ${values.length} values is not a whole number of ${Q8_0_BLOCK_SIZE}-element blocks`)
  const view = new DataView(out.buffer, out.byteOffset, out.byteLength)
  for (let b = 0; b < values.length / Q8_0_BLOCK_SIZE; b++) {
    const s = b * Q8_0_BLOCK_SIZE
    let amax = 0
    for (let j = 0; j < Q8_0_BLOCK_SIZE; j++) {
      const a = Math.abs(values[s + j]!)
      if (!(a <= amax)) {
        if (!Number.isFinite(a)) throw new InputError('QUANT_NOT_FINITE', `element ${s + j} is ${values[s + j]}: Q8_0 cannot encode NaN or infinity`)
        amax = a
      }
    }
    if (amax > Q8_0_MAX_ABS) throw new InputError('QUANT_SCALE_OVERFLOW', `block at element ${s} has |v| = ${amax}, too large for Q8_0's f16 scale (limit ${Q8_0_MAX_ABS})`)
    const d = Math.fround(amax / 127)
    const id = d === 0 ? 0 : Math.fround(1 / d)
    const o = outOffset + b * Q8_0_BYTES_PER_BLOCK
    f32[0] = d
    view.setUint16(o, f32BitsToF16Bits(u32[0]!), true)
    for (let j = 0; j < Q8_0_BLOCK_SIZE; j++) {
      const x = Math.fround(values[s + j]! * id)
      view.setInt8(o + 2 + j, Math.sign(x) * Math.floor(Math.abs(x) + 0.5))
    }
  }
  return out
}

/** Decode `blockCount` blocks from byte `byteOffset` of `bytes`: `q · d` in float32. */
export function dequantizeQ8_0(bytes: Uint8Array, byteOffset = 0, blockCount = (bytes.length - byteOffset) / Q8_0_BYTES_PER_BLOCK, out = new Float32Array(blockCount * Q8_0_BLOCK_SIZE)): Float32Array {
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength)
  for (let b = 0; b < blockCount; b++) {
    const o = byteOffset + b * Q8_0_BYTES_PER_BLOCK
    const d = f16BitsToNumber(view.getUint16(o, true))
    for (let j = 0; j < Q8_0_BLOCK_SIZE; j++) out[b * Q8_0_BLOCK_SIZE + j] = Math.fround(view.getInt8(o + 2 + j) * d)
  }
  return out
}
