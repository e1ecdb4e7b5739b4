/**
 * The one dtype table of the project, keyed by safetensors dtype names, and
 * the converters between stored bytes and float arrays.
 *
 * Bulk data lives in typed arrays in host byte order; this module refuses to
 * load on a big-endian host, where those views would not match the
 * little-endian files (every format here is little-endian).
 */
import {endianness} from 'node:os'

if (endianness() !== 'LE') {
  throw new Error('lora needs a little-endian host: safetensors, GGUF and ONNX data are little-endian')
}

export type TypedArray =
  | Float64Array
  | Float32Array
  | Int32Array
  | Int16Array
  | Int8Array
  | Uint32Array
  | Uint16Array
  | Uint8Array
  | BigInt64Array
  | BigUint64Array

type TypedArrayConstructor<T extends TypedArray> = {
  new (buffer: ArrayBufferLike, byteOffset?: number, length?: number): T
  new (length: number): T
  readonly BYTES_PER_ELEMENT: number
}

export interface DTypeInfo {
  /** The safetensors name. */
  readonly name: DType
  /** Bits per element. */
  readonly bits: number
  /** Bytes per element. */
  readonly bytes: number
  /** Typed array used to hold raw elements (F16/BF16 as Uint16Array, F8 as Uint8Array). */
  readonly array: TypedArrayConstructor<TypedArray>
  /** float: any floating format; int/uint: integers; bool: one byte 0/1. */
  readonly kind: 'float' | 'int' | 'uint' | 'bool'
}

const table = {
  F64: {bits: 64, array: Float64Array, kind: 'float'},
  F32: {bits: 32, array: Float32Array, kind: 'float'},
  F16: {bits: 16, array: Uint16Array, kind: 'float'},
  BF16: {bits: 16, array: Uint16Array, kind: 'float'},
  F8_E4M3: {bits: 8, array: Uint8Array, kind: 'float'},
  F8_E5M2: {bits: 8, array: Uint8Array, kind: 'float'},
  I64: {bits: 64, array: BigInt64Array, kind: 'int'},
  I32: {bits: 32, array: Int32Array, kind: 'int'},
  I16: {bits: 16, array: Int16Array, kind: 'int'},
  I8: {bits: 8, array: Int8Array, kind: 'int'},
  U64: {bits: 64, array: BigUint64Array, kind: 'uint'},
  U32: {bits: 32, array: Uint32Array, kind: 'uint'},
  U16: {bits: 16, array: Uint16Array, kind: 'uint'},
  U8: {bits: 8, array: Uint8Array, kind: 'uint'},
  BOOL: {bits: 8, array: Uint8Array, kind: 'bool'},
} as const

export type DType = keyof typeof table

/** Every dtype the safetensors specification lists. */
export const DTYPES: Readonly<Record<DType, DTypeInfo>> = Object.freeze(
  Object.fromEntries(
    Object.entries(table).map(([name, info]) => [
      name,
      Object.freeze({name, bits: info.bits, bytes: info.bits / 8, array: info.array, kind: info.kind}),
    ]),
  ) as unknown as Record<DType, DTypeInfo>,
)

export const DTYPE_NAMES = Object.freeze(Object.keys(table) as DType[])

export function isDType(name: unknown): name is DType {
  return typeof name === 'string' && Object.prototype.hasOwnProperty.call(table, name)
}

/** Float dtypes a user may choose for written LoRA weights. */
export const FLOAT_OUTPUT_DTYPES = Object.freeze(['F32', 'F16', 'BF16'] as const)
export type FloatOutputDType = (typeof FLOAT_OUTPUT_DTYPES)[number]

/** Parse a `--dtype` flag value (`f32`, `F16`, `bf16`). */
export function parseFloatDType(value: string): FloatOutputDType | undefined {
  const upper = value.toUpperCase()
  return (FLOAT_OUTPUT_DTYPES as readonly string[]).includes(upper) ? (upper as FloatOutputDType) : undefined
}

/** A typed view of `bytes` for `dtype`; copies when `bytes` is not aligned for the element size. */
export function typedView(dtype: DType, bytes: Uint8Array): TypedArray {
  const info = DTYPES[dtype]
  if (bytes.byteLength % info.bytes !== 0) {
    throw new RangeError(`${bytes.byteLength} bytes is not a whole number of ${dtype} elements (${info.bytes} bytes each)`)
  }
  const source = bytes.byteOffset % info.bytes === 0 ? bytes : bytes.slice()
  return new info.array(source.buffer, source.byteOffset, source.byteLength / info.bytes)
}

/** The bytes of a typed array (a view, no copy). */
export function bytesOf(array: ArrayBufferView): Uint8Array {
  return new Uint8Array(array.buffer, array.byteOffset, array.byteLength)
}

// ---------------------------------------------------------------- F16 / BF16

const f32 = new Float32Array(1)
const u32 = new Uint32Array(f32.buffer)

/** IEEE binary16 bits → number (exact). */
export function f16BitsToNumber(h: number): number {
  const sign = h & 0x8000 ? -1 : 1
  const exp = (h >> 10) & 0x1f
  const mant = h & 0x3ff
  if (exp === 0) return sign * mant * 2 ** -24
  if (exp === 0x1f) return mant === 0 ? sign * Infinity : Number.NaN
  return sign * (1 + mant / 1024) * 2 ** (exp - 15)
}

/** float32 bits → binary16 bits, round to nearest even; NaN stays NaN (quiet), overflow gives ±Inf. */
export function f32BitsToF16Bits(x: number): number {
  const sign = (x >>> 16) & 0x8000
  const exp = (x >>> 23) & 0xff
  let mant = x & 0x7fffff
  if (exp === 0xff) return mant === 0 ? sign | 0x7c00 : sign | 0x7e00 | (mant >>> 13)
  const e = exp - 112 // rebias 127 → 15
  if (e >= 0x1f) return sign | 0x7c00
  if (e <= 0) {
    if (e < -10) return sign
    mant |= 0x800000
    const shift = 14 - e
    let half = mant >>> shift
    const rem = mant & ((1 << shift) - 1)
    const mid = 1 << (shift - 1)
    if (rem > mid || (rem === mid && (half & 1) === 1)) half++
    return sign | half
  }
  let half = (e << 10) | (mant >>> 13)
  const rem = mant & 0x1fff
  if (rem > 0x1000 || (rem === 0x1000 && (half & 1) === 1)) half++ // a carry into the exponent is correct rounding (up to Inf)
  return sign | half
}

/** number → binary16 bits (via float32, which is exact for the rounding that matters here except double rounding at ties of float32 itself). */
export function numberToF16Bits(value: number): number {
  f32[0] = value
  return f32BitsToF16Bits(u32[0]!)
}

/** float32 bits → bfloat16 bits, round to nearest even; NaN stays NaN (quiet). */
export function f32BitsToBf16Bits(x: number): number {
  if ((x & 0x7f800000) === 0x7f800000 && (x & 0x7fffff) !== 0) return ((x >>> 16) | 0x40) & 0xffff
  return ((x + 0x7fff + ((x >>> 16) & 1)) >>> 16) & 0xffff
}

let f16Table: Float32Array | undefined
/** All 65,536 binary16 values as float32 (exact: every f16 is a f32). */
function f16ToF32Table(): Float32Array {
  if (!f16Table) {
    f16Table = new Float32Array(65536)
    for (let h = 0; h < 65536; h++) f16Table[h] = f16BitsToNumber(h)
  }
  return f16Table
}

/** F8_E4M3 (the "fn" variant: no infinities, S.1111.111 is NaN, max 448) bits → number. */
export function f8e4m3BitsToNumber(b: number): number {
  const sign = b & 0x80 ? -1 : 1
  const exp = (b >> 3) & 0xf
  const mant = b & 0x7
  if (exp === 0xf && mant === 0x7) return Number.NaN
  if (exp === 0) return sign * mant * 2 ** -9
  return sign * (1 + mant / 8) * 2 ** (exp - 7)
}

/** F8_E5M2 (IEEE-like, with Inf and NaN) bits → number. */
export function f8e5m2BitsToNumber(b: number): number {
  return f16BitsToNumber(b << 8)
}

const f8Tables = new Map<DType, Float32Array>()
function f8Table(dtype: 'F8_E4M3' | 'F8_E5M2'): Float32Array {
  let t = f8Tables.get(dtype)
  if (!t) {
    t = new Float32Array(256)
    const decode = dtype === 'F8_E4M3' ? f8e4m3BitsToNumber : f8e5m2BitsToNumber
    for (let b = 0; b < 256; b++) t[b] = decode(b)
    f8Tables.set(dtype, t)
  }
  return t
}

// ---------------------------------------------------------------- bulk conversion

/** Decode stored elements of any numeric dtype to float32 (integers converted by value). */
export function toFloat32(dtype: DType, bytes: Uint8Array): Float32Array {
  const raw = typedView(dtype, bytes)
  switch (dtype) {
    case 'F32':
      return raw as Float32Array
    case 'F16': {
      // normal values by bit arithmetic (rebias 15 → 127); zeros, subnormals, Inf and NaN from the table
      const src = raw as Uint16Array
      const out = new Float32Array(src.length)
      const bits = new Uint32Array(out.buffer)
      let table: Float32Array | undefined
      for (let i = 0; i < src.length; i++) {
        const h = src[i]!
        const e = h & 0x7c00
        if (e !== 0 && e !== 0x7c00) bits[i] = ((h & 0x8000) << 16) | (((h & 0x7fff) << 13) + 0x38000000)
        else out[i] = (table ??= f16ToF32Table())[h]!
      }
      return out
    }
    case 'BF16': {
      const src = raw as Uint16Array
      const out = new Float32Array(src.length)
      const bits = new Uint32Array(out.buffer)
      for (let i = 0; i < src.length; i++) bits[i] = src[i]! << 16
      return out
    }
    case 'F8_E4M3':
    case 'F8_E5M2': {
      const table = f8Table(dtype)
      const src = raw as Uint8Array
      const out = new Float32Array(src.length)
      for (let i = 0; i < src.length; i++) out[i] = table[src[i]!]!
      return out
    }
    default: {
      const out = new Float32Array(raw.length)
      for (let i = 0; i < raw.length; i++) out[i] = Number(raw[i]!)
      return out
    }
  }
}

/** Decode stored elements of any numeric dtype to float64. */
export function toFloat64(dtype: DType, bytes: Uint8Array): Float64Array {
  if (dtype === 'F64') return Float64Array.from(typedView(dtype, bytes) as Float64Array)
  if (dtype === 'I64' || dtype === 'U64') {
    const raw = typedView(dtype, bytes) as BigInt64Array | BigUint64Array
    const out = new Float64Array(raw.length)
    for (let i = 0; i < raw.length; i++) out[i] = Number(raw[i]!)
    return out
  }
  return Float64Array.from(toFloat32(dtype, bytes))
}

/**
 * Encode float values into the stored bytes of a float dtype (F64, F32, F16,
 * BF16), rounding to nearest even. NaN and ±Inf are preserved.
 */
export function fromFloat(dtype: DType, values: Float32Array | Float64Array): Uint8Array {
  switch (dtype) {
    case 'F64':
      return bytesOf(values instanceof Float64Array ? values : Float64Array.from(values))
    case 'F32':
      return bytesOf(values instanceof Float32Array ? values : Float32Array.from(values))
    case 'F16': {
      const src = values instanceof Float32Array ? values : roundToOddF32(values)
      const bits = new Uint32Array(src.buffer, src.byteOffset, src.length)
      const out = new Uint16Array(src.length)
      for (let i = 0; i < src.length; i++) {
        const x = bits[i]!
        const abs = x & 0x7fffffff
        // results that are normal f16 (2^-14 ≤ |x| < 65520): rebias and round to nearest even in one add
        if (abs >= 0x38800000 && abs < 0x477ff000) out[i] = ((x >>> 16) & 0x8000) | ((abs - 0x38000000 + 0xfff + ((abs >>> 13) & 1)) >>> 13)
        else out[i] = f32BitsToF16Bits(x)
      }
      return bytesOf(out)
    }
    case 'BF16': {
      const src = values instanceof Float32Array ? values : roundToOddF32(values)
      const bits = new Uint32Array(src.buffer, src.byteOffset, src.length)
      const out = new Uint16Array(src.length)
      for (let i = 0; i < src.length; i++) out[i] = f32BitsToBf16Bits(bits[i]!)
      return bytesOf(out)
    }
    default:
      throw new RangeError(`cannot encode floats as ${dtype}: only F64, F32, F16 and BF16 are writable float dtypes`)
  }
}

/**
 * float64 → float32 rounding to odd: an inexact result gets an odd last bit.
 * Rounding that to any narrower format (F16, BF16) then gives the correctly
 * rounded result of the float64 value (no double-rounding error).
 */
function roundToOddF32(values: Float64Array): Float32Array {
  const out = Float32Array.from(values)
  const bits = new Uint32Array(out.buffer)
  for (let i = 0; i < values.length; i++) {
    const x = values[i]!
    const f = out[i]!
    if (f !== x && Number.isFinite(f) && (bits[i]! & 1) === 0) bits[i] = Math.abs(x) > Math.abs(f) ? bits[i]! + 1 : bits[i]! - 1
  }
  return out
}

/** Convert stored bytes between float dtypes; returns the input when the dtypes are equal. */
export function convertFloat(from: DType, to: DType, bytes: Uint8Array): Uint8Array {
  if (from === to) return bytes
  if (to === 'F64') return bytesOf(toFloat64(from, bytes))
  // from F64, round once (through float32 first would round twice: a tie in float32 may not be one in float64)
  return fromFloat(to, from === 'F64' ? toFloat64(from, bytes) : toFloat32(from, bytes))
}

/** Number of bytes for `count` elements of `dtype`. */
export function byteSize(dtype: DType, count: number): number {
  return count * DTYPES[dtype].bytes
}
