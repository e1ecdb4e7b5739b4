/**
 * Decoding stored float elements straight into a float64 array at an
 * offset, without an intermediate float32 copy: the hot loop of reading a
 * pack's stacks. F16 goes through a 65,536-entry table built from the dtype
 * module's exact `f16BitsToNumber`.
 */
import {DType, f16BitsToNumber, typedView} from '../dtype.js'

/** 2^(max(e, 1) − 25) for the 32 F16 exponent codes. */
const F16_SCALE = Float64Array.from({length: 32}, (_, e) => 2 ** (Math.max(e, 1) - 25))

/** Copies elements of a stored float tensor into float64 arrays: `(from, count, target, at)`. */
export type FloatDecoder = (from: number, count: number, target: Float64Array, at: number) => void

/**
 * A decoder for the elements of `bytes` (stored as `dtype`).
 * @throws RangeError for a dtype other than F64, F32, F16, BF16
 */
export function floatDecoder(dtype: DType, bytes: Uint8Array): FloatDecoder {
  switch (dtype) {
    case 'F16': {
      const src = typedView('F16', bytes) as Uint16Array
      return (from, count, target, at) => {
        for (let i = 0; i < count; i++) {
          const h = src[from + i]!
          const e = (h >> 10) & 0x1f
          if (e === 0x1f) {
            target[at + i] = f16BitsToNumber(h)
            continue
          }
          const magnitude = ((h & 0x3ff) | (e === 0 ? 0 : 0x400)) * F16_SCALE[e]!
          target[at + i] = h & 0x8000 ? -magnitude : magnitude
        }
      }
    }
    case 'BF16': {
      const src = typedView('BF16', bytes) as Uint16Array
      const word = new Uint32Array(1)
      const value = new Float32Array(word.buffer)
      return (from, count, target, at) => {
        for (let i = 0; i < count; i++) {
          word[0] = src[from + i]! << 16
          target[at + i] = value[0]!
        }
      }
    }
    case 'F32':
    case 'F64': {
      const src = typedView(dtype, bytes) as Float32Array | Float64Array
      return (from, count, target, at) => {
        for (let i = 0; i < count; i++) target[at + i] = src[from + i]!
      }
    }
    default:
      throw new RangeError(`cannot decode ${dtype} as float`)
  }
}

/** All elements of `bytes` (stored as `dtype`) as float64. */
export function decodeFloat64(dtype: DType, bytes: Uint8Array): Float64Array {
  const n = bytes.byteLength / (dtype === 'F64' ? 8 : dtype === 'F32' ? 4 : 2)
  const out = new Float64Array(n)
  floatDecoder(dtype, bytes)(0, n, out, 0)
  return out
}
