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
  /** PyTorch's name (`torch.float16`, as transformers writes `torch_dtype` and bitsandbytes its quant state). */
  readonly torch: string
  /** ONNX: the `TensorProto.DataType` code and onnxruntime's element-type name. */
  readonly onnx: {readonly code: number; readonly name: string}
  /** The GGML type holding the same elements (`general.file_type`-independent), when GGUF has one. */
  readonly ggml?: string
  /** Narrow floats: the exponent bits, all set in NaN and ±Infinity (and only there): `(bits & mask) === mask`. */
  readonly nonFiniteMask?: number
}

// name: bits, typed array, kind; torch name; ONNX TensorProto.DataType code and onnxruntime name; GGML type
const table = {
  F64: {bits: 64, array: Float64Array, kind: 'float', torch: 'float64', onnx: {code: 11, name: 'float64'}, ggml: 'F64'},
  F32: {bits: 32, array: Float32Array, kind: 'float', torch: 'float32', onnx: {code: 1, name: 'float32'}, ggml: 'F32'},
  F16: {bits: 16, array: Uint16Array, kind: 'float', torch: 'float16', onnx: {code: 10, name: 'float16'}, ggml: 'F16', nonFiniteMask: 0x7c00},
  BF16: {bits: 16, array: Uint16Array, kind: 'float', torch: 'bfloat16', onnx: {code: 16, name: 'bfloat16'}, ggml: 'BF16', nonFiniteMask: 0x7f80},
  // e4m3fn has no infinities: NaN is S.1111.111
  F8_E4M3: {bits: 8, array: Uint8Array, kind: 'float', torch: 'float8_e4m3fn', onnx: {code: 17, name: 'float8e4m3fn'}, nonFiniteMask: 0x7f},
  F8_E5M2: {bits: 8, array: Uint8Array, kind: 'float', torch: 'float8_e5m2', onnx: {code: 19, name: 'float8e5m2'}, nonFiniteMask: 0x7c},
  I64: {bits: 64, array: BigInt64Array, kind: 'int', torch: 'int64', onnx: {code: 7, name: 'int64'}, ggml: 'I64'},
  I32: {bits: 32, array: Int32Array, kind: 'int', torch: 'int32', onnx: {code: 6, name: 'int32'}, ggml: 'I32'},
  I16: {bits: 16, array: Int16Array, kind: 'int', torch: 'int16', onnx: {code: 5, name: 'int16'}, ggml: 'I16'},
  I8: {bits: 8, array: Int8Array, kind: 'int', torch: 'int8', onnx: {code: 3, name: 'int8'}, ggml: 'I8'},
  U64: {bits: 64, array: BigUint64Array, kind: 'uint', torch: 'uint64', onnx: {code: 13, name: 'uint64'}},
  U32: {bits: 32, array: Uint32Array, kind: 'uint', torch: 'uint32', onnx: {code: 12, name: 'uint32'}},
  U16: {bits: 16, array: Uint16Array, kind: 'uint', torch: 'uint16', onnx: {code: 4, name: 'uint16'}},
  U8: {bits: 8, array: Uint8Array, kind: 'uint', torch: 'uint8', onnx: {code: 2, name: 'uint8'}},
  BOOL: {bits: 8, array: Uint8Array, kind: 'bool', torch: 'bool', onnx: {code: 9, name: 'bool'}},
} as const

export type DType = keyof typeof table

/** Every dtype the safetensors specification lists. */
export const DTYPES: Readonly<Record<DType, DTypeInfo>> = Object.freeze(
  Object.fromEntries(
    Object.entries(table).map(([name, info]) => [
      name,
      Object.freeze({
        name,
        bits: info.bits,
        bytes: info.bits / 8,
        array: info.array,
        kind: info.kind,
        torch: info.torch,
        onnx: Object.freeze({...info.onnx}),
        ...('ggml' in info ? {ggml: info.ggml} : {}),
        ...('nonFiniteMask' in info ? {nonFiniteMask: info.nonFiniteMask} : {}),
      }),
    ]),
  ) as unknown as Record<DType, DTypeInfo>,
)

export const DTYPE_NAMES = Object.freeze(Object.keys(table) as DType[])

/** Whether `name` is a safetensors dtype name. */
export function isDType(name: unknown): name is DType {
  return typeof name === 'string' && Object.prototype.hasOwnProperty.call(table, name)
}

function reverse(key: (info: DTypeInfo) => string | undefined): ReadonlyMap<string, DType> {
  return new Map(DTYPE_NAMES.flatMap((d) => {
    const name = key(DTYPES[d])
    return name === undefined ? [] : [[name, d] as const]
  }))
}
const BY_TORCH = reverse((i) => i.torch)
const BY_ONNX = reverse((i) => i.onnx.name)
const BY_GGML = reverse((i) => i.ggml)

/** The dtype of a PyTorch dtype name (`float16` → `F16`), or undefined. */
export function dtypeFromTorch(name: string): DType | undefined {
  return BY_TORCH.get(name)
}

/** The dtype of an onnxruntime element-type name (`float16` → `F16`), or undefined. */
export function dtypeFromOnnx(name: string): DType | undefined {
  return BY_ONNX.get(name)
}

/** The dtype whose elements a GGML type holds unblocked (`F16` → `F16`), or undefined for block-quantized types. */
export function dtypeFromGgml(name: string): DType | undefined {
  return BY_GGML.get(name)
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

/**
 * The index of the first NaN or ±Infinity among `dtype` elements stored in
 * `bytes` (or of a float32/float64 array), or -1 when every one is finite.
 * Integer dtypes are always finite. One pass over memory, no decoding.
 */
export function firstNonFinite(dtype: DType, data: Uint8Array | Float32Array | Float64Array): number {
  const info = DTYPES[dtype]
  if (info.kind !== 'float') return -1
  const values = data instanceof Uint8Array ? typedView(dtype, data) : data
  const mask = info.nonFiniteMask
  if (mask !== undefined) {
    const bits = values as Uint16Array | Uint8Array
    for (let i = 0; i < bits.length; i++) if ((bits[i]! & mask) === mask) return i
    return -1
  }
  const floats = values as Float32Array | Float64Array
  // x − x is 0 for every finite x, NaN for NaN and ±Infinity
  for (let i = 0; i < floats.length; i++) if (floats[i]! - floats[i]! !== 0) return i
  return -1
}

/** What a non-finite element is, in words: `NaN`, `+Infinity` or `-Infinity`. */
export function nonFiniteName(value: number): string {
  return Number.isNaN(value) ? 'NaN' : value > 0 ? '+Infinity' : '-Infinity'
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
/**
 * All 65,536 binary16 values as float32, indexed by their bits (exact: every
 * f16 is a f32), built once: the one f16 decoding table of the project.
 */
export function f16ToF32Table(): Float32Array {
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

/** Copies stored float elements into a float32 array: `(from, count, at)` reads elements `[from, from + count)` and writes them at `target[at…]`. */
export type Float32Decoder = (from: number, count: number, at: number) => void

/**
 * A decoder of the elements of `bytes` (stored as F32, F16 or BF16) into
 * `target` at an offset, allocating nothing per call: the hot loop of
 * quantizing (F16 through the one f16 table, BF16 by a shift, F32 copied).
 * @throws RangeError for another dtype, or bytes not aligned to the element size
 */
export function float32Decoder(dtype: DType, bytes: Uint8Array, target: Float32Array): Float32Decoder {
  if (!(dtype === 'F32' || dtype === 'F16' || dtype === 'BF16')) throw new RangeError(`cannot decode ${dtype} into float32 rows (F32, F16 and BF16 only)`)
  if (bytes.byteOffset % DTYPES[dtype].bytes !== 0) throw new RangeError(`${dtype} bytes at offset ${bytes.byteOffset} are not aligned to their element size`)
  if (dtype === 'F32') {
    const src = new Float32Array(bytes.buffer, bytes.byteOffset, bytes.byteLength / 4)
    return (from, count, at) => target.set(src.subarray(from, from + count), at)
  }
  const src = new Uint16Array(bytes.buffer, bytes.byteOffset, bytes.byteLength / 2)
  if (dtype === 'BF16') {
    const bits = new Uint32Array(target.buffer, target.byteOffset, target.length)
    return (from, count, at) => {
      for (let i = 0; i < count; i++) bits[at + i] = src[from + i]! << 16
    }
  }
  const table = f16ToF32Table()
  return (from, count, at) => {
    for (let i = 0; i < count; i++) target[at + i] = table[src[from + i]!]!
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

/** Copies elements of a stored float tensor into a float64 array: `(from, count, target, at)`. */
export type FloatDecoder = (from: number, count: number, target: Float64Array, at: number) => void

/**
 * A decoder of the elements of `bytes` (stored as `dtype`) straight into
 * float64 arrays at an offset, without an intermediate float32 copy (the hot
 * loop of reading a pack's stacks).
 * @throws RangeError for a dtype other than F64, F32, F16, BF16
 */
export function floatDecoder(dtype: DType, bytes: Uint8Array): FloatDecoder {
  switch (dtype) {
    case 'F16': {
      const src = typedView('F16', bytes) as Uint16Array
      const table = f16ToF32Table()
      return (from, count, target, at) => {
        for (let i = 0; i < count; i++) target[at + i] = table[src[from + i]!]!
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

/** Number of bytes for `count` elements of `dtype`. */
export function byteSize(dtype: DType, count: number): number {
  return count * DTYPES[dtype].bytes
}
