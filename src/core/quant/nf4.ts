/**
 * NF4 (4-bit NormalFloat, QLoRA paper / bitsandbytes `quantize_4bit(…,
 * quant_type="nf4")`).
 *
 * The tensor is flattened; every block of `blockSize` consecutive elements
 * (64 by default; the last block may be shorter) stores its absmax as float32
 * and, per element, the index of the nearest of the 16 code values after
 * dividing by the absmax (multiplying by float32 `1/absmax`, as the
 * bitsandbytes kernel does; a value exactly halfway between two codes takes
 * the lower one, as the kernel's `x > threshold` tests do). Two codes per
 * byte, the first element in the high nibble. An all-zero block has absmax 0
 * and code 7 (the exact 0). Value = `code[q] · absmax` in float32.
 *
 * Double quantization (`bnb_4bit_use_double_quant`): the absmax values, minus
 * their mean, are themselves quantized to 8 bits with the dynamic map in
 * blocks of 256 (see `dynamic-map.ts`).
 */
import {InputError} from '../errors.js'
import {Blockwise8, dequantizeBlockwise8, dynamicMap, quantizeBlockwise8} from './dynamic-map.js'

/** The NF4 code book exactly as bitsandbytes publishes it (`get_4bit_type("nf4")`). */
export const NF4_CODE: readonly number[] = Object.freeze([
  -1.0, -0.6961928009986877, -0.5250730514526367, -0.39491748809814453, -0.28444138169288635, -0.18477343022823334,
  -0.09105003625154495, 0.0, 0.07958029955625534, 0.16093020141124725, 0.24611230194568634, 0.33791524171829224,
  0.44070982933044434, 0.5626170039176941, 0.7229568362236023, 1.0,
])

/** Block sizes bitsandbytes accepts for 4-bit quantization. */
export const NF4_BLOCK_SIZES: readonly number[] = Object.freeze([64, 128, 256, 512, 1024, 2048, 4096])
export const NF4_DEFAULT_BLOCK_SIZE = 64
/** Block size of the second-level (absmax) quantization, as bitsandbytes uses. */
export const NF4_NESTED_BLOCK_SIZE = 256
/** The code of the exact zero. */
export const NF4_ZERO_CODE = 7

const CODE = Float32Array.from(NF4_CODE)
/** Decision thresholds: midpoints of neighbouring codes, as float32 (the kernel's literals). */
const THRESHOLDS = (() => {
  const t = new Float32Array(16)
  for (let i = 0; i < 15; i++) t[i] = Math.fround((NF4_CODE[i]! + NF4_CODE[i + 1]!) / 2)
  t[15] = Infinity
  return t
})()
/** Lookup resolution over [-1, 1]: bucket b covers [-1 + b/512, -1 + (b+1)/512); at most one threshold falls in a bucket. */
const BUCKETS = 1024
/** For each bucket, the number of thresholds strictly below the bucket's start. */
const BUCKET_CODE = (() => {
  const table = new Uint8Array(BUCKETS)
  for (let b = 0; b < BUCKETS; b++) {
    const lo = -1 + b / 512
    let count = 0
    while (count < 15 && THRESHOLDS[count]! < lo) count++
    table[b] = count
  }
  return table
})()

/** The code of a normalized value x (≈ in [-1, 1]): nearest code, halfway values to the lower one. */
function nf4Code(x: number): number {
  let b = ((x + 1) * 512) | 0
  if (b < 0) b = 0
  else if (b >= BUCKETS) b = BUCKETS - 1
  const c = BUCKET_CODE[b]!
  return x > THRESHOLDS[c]! ? c + 1 : c
}

/** The precondition of NF4 with this block size, as a sentence, or undefined when it holds. */
export function nf4BlockSizeProblem(blockSize: number): string | undefined {
  return NF4_BLOCK_SIZES.includes(blockSize) ? undefined : `block size ${blockSize} is not one bitsandbytes supports (${NF4_BLOCK_SIZES.join(', ')})`
}

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

/** An NF4-encoded tensor of `count` elements. */
export interface Nf4Encoded {
  readonly count: number
  readonly blockSize: number
  /** ceil(count / 2) bytes, two codes per byte, first element in the high nibble. */
  readonly packed: Uint8Array
  /** The absmax of each block, as measured (used for the codes). */
  readonly absmax: Float32Array
  /** Present with double quantization: the absmax as stored. */
  readonly nested?: Nf4Nested
  /** The code book to decode with, when read from a file (`quant_map`); default `NF4_CODE`. */
  readonly quantMap?: Float32Array
}

/**
 * Streaming NF4 encoder: push the flattened tensor in pieces whose lengths
 * are multiples of the block size (the last piece may be shorter), then
 * `finish()`.
 */
export class Nf4Encoder {
  readonly packed: Uint8Array
  readonly absmax: Float32Array
  private done = 0

  constructor(
    readonly count: number,
    readonly blockSize: number,
    readonly doubleQuant = false,
  ) {
    const problem = nf4BlockSizeProblem(blockSize)
    if (problem) throw new InputError('QUANT_BAD_BLOCK_SIZE', `nf4: ${problem}`)
    this.packed = new Uint8Array(Math.ceil(count / 2))
    this.absmax = new Float32Array(Math.ceil(count / blockSize))
  }

  /**
   * Encode the next `values.length` elements.
   * @throws InputError QUANT_NOT_FINITE for NaN or ±Infinity (naming the element index)
   * @throws RangeError when the piece does not end on a block boundary before the end
   */
  push(values: Float32Array): void {
    const {blockSize, packed, absmax} = this
    const start = this.done
    const n = values.length
    if (start + n > this.count) throw new RangeError(`nf4: ${start + n} elements pushed, tensor has ${this.count}`)
    if (start + n < this.count && n % blockSize !== 0) throw new RangeError(`nf4: a piece of ${n} elements does not end on a block boundary (block size ${blockSize})`)
    for (let b0 = 0; b0 < n; b0 += blockSize) {
      const b1 = Math.min(n, b0 + blockSize)
      let m = 0
      for (let i = b0; i < b1; i++) {
        const a = Math.abs(values[i]!)
        if (!(a <= m)) {
          if (!Number.isFinite(a)) throw notFinite(start + i, values[i]!)
          m = a
        }
      }
      absmax[(start + b0) / blockSize] = m
      const first = (start + b0) >> 1
      const even = (b1 - b0) & ~1
      if (m === 0) {
        packed.fill((NF4_ZERO_CODE << 4) | NF4_ZERO_CODE, first, first + even / 2)
        if (even !== b1 - b0) packed[first + even / 2] = NF4_ZERO_CODE << 4
        continue
      }
      const inv = Math.fround(1 / m)
      // block starts are multiples of blockSize (even), so pairs never straddle blocks; only the tensor's end can be odd
      for (let i = b0, o = first; i < b0 + even; i += 2, o++) packed[o] = (nf4Code(Math.fround(values[i]! * inv)) << 4) | nf4Code(Math.fround(values[i + 1]! * inv))
      if (even !== b1 - b0) packed[first + even / 2] = nf4Code(Math.fround(values[b1 - 1]! * inv)) << 4
    }
    this.done += n
  }

  /** All elements pushed: the encoded tensor (double-quantizing the absmax values if asked). */
  finish(): Nf4Encoded {
    if (this.done !== this.count) throw new RangeError(`nf4: ${this.done} of ${this.count} elements pushed`)
    const base = {count: this.count, blockSize: this.blockSize, packed: this.packed, absmax: this.absmax}
    return this.doubleQuant ? {...base, nested: nestAbsmax(this.absmax)} : base
  }
}

function notFinite(index: number, value: number): InputError {
  return new InputError('QUANT_NOT_FINITE', `element ${index} is ${value}: 4-bit schemes cannot encode NaN or infinity`)
}

/** Quantize a whole flattened tensor. */
export function quantizeNf4(values: Float32Array, blockSize = NF4_DEFAULT_BLOCK_SIZE, doubleQuant = false): Nf4Encoded {
  const encoder = new Nf4Encoder(values.length, blockSize, doubleQuant)
  encoder.push(values)
  return encoder.finish()
}

/** Double quantization of the absmax values: subtract the (float32) mean, 8-bit dynamic map in blocks of 256. */
export function nestAbsmax(absmax: Float32Array): Nf4Nested {
  let sum = 0
  for (let i = 0; i < absmax.length; i++) sum += absmax[i]!
  const offset = Math.fround(absmax.length === 0 ? 0 : sum / absmax.length)
  const centered = new Float32Array(absmax.length)
  for (let i = 0; i < absmax.length; i++) centered[i] = absmax[i]! - offset
  const q: Blockwise8 = quantizeBlockwise8(centered, NF4_NESTED_BLOCK_SIZE, dynamicMap())
  return {codes: q.codes, nestedAbsmax: q.absmax, offset, code: q.code}
}

/** The absmax values a loader decodes: measured ones, or with double quantization `map[q] · nestedAbsmax + offset` (float32). */
export function storedAbsmax(encoded: Pick<Nf4Encoded, 'absmax' | 'nested'>): Float32Array {
  const nested = encoded.nested
  if (!nested) return encoded.absmax
  const out = dequantizeBlockwise8(nested.codes, nested.nestedAbsmax, NF4_NESTED_BLOCK_SIZE, nested.code)
  for (let i = 0; i < out.length; i++) out[i] = Math.fround(out[i]! + nested.offset)
  return out
}

/**
 * Decode elements `[start, start + count)` of an NF4 tensor: `code[q] · absmax[block]` in float32.
 * @param absmax the absmax values as a loader sees them (`storedAbsmax`)
 */
export function dequantizeNf4(
  packed: Uint8Array,
  absmax: Float32Array,
  blockSize: number,
  start: number,
  count: number,
  out: Float32Array = new Float32Array(count),
  code: Float32Array = CODE,
): Float32Array {
  const end = start + count
  for (let b0 = start - (start % blockSize); b0 < end; b0 += blockSize) {
    const scale = absmax[b0 / blockSize]!
    let i = Math.max(b0, start)
    const to = Math.min(end, b0 + blockSize)
    if (i & 1 && i < to) {
      out[i - start] = code[packed[i >> 1]! & 0x0f]! * scale
      i++
    }
    for (; i + 1 < to; i += 2) {
      const byte = packed[i >> 1]!
      out[i - start] = code[byte >> 4]! * scale
      out[i + 1 - start] = code[byte & 0x0f]! * scale
    }
    if (i < to) out[i - start] = code[packed[i >> 1]! >> 4]! * scale
  }
  return out
}
