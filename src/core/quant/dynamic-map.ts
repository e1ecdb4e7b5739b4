/**
 * bitsandbytes' signed 8-bit "dynamic" code book and blockwise 8-bit
 * quantization with it: what NF4 double quantization uses to store the
 * per-block absmax values (bitsandbytes `create_dynamic_map(signed=True)` and
 * `quantize_blockwise(…, blocksize=256)`).
 *
 * The map: for i = 0…6, the 2^i midpoints of `linspace(0.1, 1, 2^i + 1)`
 * scaled by 10^(i−6), with both signs, plus 0 and 1.0: 256 sorted values.
 * bitsandbytes stores the map it used next to the codes (`nested_quant_map`),
 * and dequantization reads the stored map, so a last-bit difference from
 * torch's float32 `linspace` cannot change what a loader decodes.
 *
 * NF4 double quantization (`bnb_4bit_use_double_quant`) stores the per-block
 * absmax values this way: minus their float32 mean, in blocks of 256.
 */
import {InputError} from '../errors.js'

/** Values in the dynamic map. */
export const DYNAMIC_MAP_SIZE = 256

let cached: Float32Array | undefined

/** The 256-value signed dynamic map, ascending, as float32. */
export function dynamicMap(): Float32Array {
  if (cached) return cached
  const values: number[] = []
  const maxExponentBits = 7
  for (let i = 0; i < maxExponentBits; i++) {
    const items = 2 ** i + 1
    const scale = 10 ** (i - (maxExponentBits - 1))
    for (let j = 0; j + 1 < items; j++) {
      const lo = 0.1 + (0.9 * j) / (items - 1)
      const hi = 0.1 + (0.9 * (j + 1)) / (items - 1)
      const mean = (lo + hi) / 2
      values.push(scale * mean, -scale * mean)
    }
  }
  values.push(0, 1)
  values.sort((a, b) => a - b)
  cached = Float32Array.from(values)
  return cached
}

/** Midpoints between neighbouring map values (for nearest-value search). */
function midpoints(code: Float32Array): Float64Array {
  const mids = new Float64Array(code.length - 1)
  for (let i = 0; i + 1 < code.length; i++) mids[i] = (code[i]! + code[i + 1]!) / 2
  return mids
}

/** Index of the code value nearest to `x` (binary search over midpoints; ties go up). */
function nearest(mids: Float64Array, x: number): number {
  let lo = 0
  let hi = mids.length
  while (lo < hi) {
    const mid = (lo + hi) >> 1
    if (x >= mids[mid]!) lo = mid + 1
    else hi = mid
  }
  return lo
}

export interface Blockwise8 {
  /** One code (map index) per value. */
  readonly codes: Uint8Array
  /** Largest |value| per block of `blockSize` values. */
  readonly absmax: Float32Array
  readonly blockSize: number
  /** The map the codes index. */
  readonly code: Float32Array
}

/**
 * Quantize `values` to 8 bits per value: per block, divide by the block's
 * absmax and store the index of the nearest map value.
 * @throws InputError when a value is NaN or infinite
 */
export function quantizeBlockwise8(values: Float32Array, blockSize: number, code: Float32Array = dynamicMap()): Blockwise8 {
  const n = values.length
  const blocks = Math.ceil(n / blockSize)
  const codes = new Uint8Array(n)
  const absmax = new Float32Array(blocks)
  const mids = midpoints(code)
  for (let b = 0; b < blocks; b++) {
    const start = b * blockSize
    const end = Math.min(n, start + blockSize)
    let m = 0
    for (let i = start; i < end; i++) {
      const a = Math.abs(values[i]!)
      if (!(a <= m)) {
        if (!Number.isFinite(a)) throw new InputError('QUANT_NOT_FINITE', `value ${i} of the absmax statistics is ${values[i]}: cannot quantize NaN or infinity`)
        m = a
      }
    }
    absmax[b] = m
    const inv = Math.fround(1 / m)
    for (let i = start; i < end; i++) codes[i] = m === 0 ? nearest(mids, 0) : nearest(mids, Math.fround(values[i]! * inv))
  }
  return {codes, absmax, blockSize, code}
}

/** Inverse of `quantizeBlockwise8`: `code[q] · absmax[block]` in float32. */
export function dequantizeBlockwise8(codes: Uint8Array, absmax: Float32Array, blockSize: number, code: Float32Array): Float32Array {
  const out = new Float32Array(codes.length)
  for (let i = 0; i < codes.length; i++) out[i] = Math.fround(code[codes[i]!]! * absmax[Math.floor(i / blockSize)]!)
  return out
}

/** Block size of the second-level (absmax) quantization of NF4, as bitsandbytes uses. */
export const NESTED_BLOCK_SIZE = 256

/** Second-level quantization of the absmax values. */
export interface Nf4Nested {
  /** The 8-bit codes of `absmax − offset`, one per NF4 block. */
  readonly codes: Uint8Array
  /** absmax of each block of 256 (absmax − offset) values. */
  readonly nestedAbsmax: Float32Array
  /** The mean of the absmax values (float32), added back after decoding. */
  readonly offset: number
  /** The dynamic map (256 float32 values). */
  readonly code: Float32Array
}

/** Double quantization of the absmax values: subtract the (float32) mean, 8-bit dynamic map in blocks of 256. */
export function nestAbsmax(absmax: Float32Array): Nf4Nested {
  let sum = 0
  for (let i = 0; i < absmax.length; i++) sum += absmax[i]!
  const offset = Math.fround(absmax.length === 0 ? 0 : sum / absmax.length)
  const centered = new Float32Array(absmax.length)
  for (let i = 0; i < absmax.length; i++) centered[i] = absmax[i]! - offset
  const q: Blockwise8 = quantizeBlockwise8(centered, NESTED_BLOCK_SIZE, dynamicMap())
  return {codes: q.codes, nestedAbsmax: q.absmax, offset, code: q.code}
}

/** The absmax values a loader decodes: measured ones, or with double quantization `map[q] · nestedAbsmax + offset` (float32). */
export function storedAbsmax(encoded: {readonly absmax: Float32Array; readonly nested?: Nf4Nested}): Float32Array {
  const nested = encoded.nested
  if (!nested) return encoded.absmax
  const out = dequantizeBlockwise8(nested.codes, nested.nestedAbsmax, NESTED_BLOCK_SIZE, nested.code)
  for (let i = 0; i < out.length; i++) out[i] = Math.fround(out[i]! + nested.offset)
  return out
}
