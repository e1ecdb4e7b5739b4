/**
 * GGUF constants, as llama.cpp's `gguf-py/gguf/constants.py` defines them:
 * the magic, the metadata value types and the GGML tensor types `lora`
 * reads and writes, with their block sizes and bytes per block
 * (`GGML_QUANT_SIZES`).
 *
 * File layout (version 3, all little-endian):
 *   u32 magic "GGUF" · u32 version · u64 tensor count · u64 kv count
 *   kv:          string key · u32 value type · value
 *   tensor info: string name · u32 n_dims · u64 ne[n_dims] (ne[0] fastest-varying) · u32 ggml type · u64 offset
 *   padding to `general.alignment` (default 32), then tensor data, each tensor padded to the alignment;
 *   offsets are relative to the start of the data section.
 * A string is a u64 byte length then UTF-8 bytes (no terminator); an array
 * is a u32 item type, a u64 count, then the items.
 */

/** "GGUF" read as a little-endian u32. */
export const GGUF_MAGIC = 0x46554747
export const GGUF_VERSION = 3
export const GGUF_DEFAULT_ALIGNMENT = 32
/** ggml's GGML_MAX_DIMS: a tensor has at most 4 dimensions. */
export const GGUF_MAX_DIMS = 4
/** ggml's GGML_MAX_NAME: tensor names must be shorter than 64 bytes (llama.cpp refuses longer ones). */
export const GGUF_MAX_NAME_BYTES = 63

export const GgufValueType = Object.freeze({
  UINT8: 0,
  INT8: 1,
  UINT16: 2,
  INT16: 3,
  UINT32: 4,
  INT32: 5,
  FLOAT32: 6,
  BOOL: 7,
  STRING: 8,
  ARRAY: 9,
  UINT64: 10,
  INT64: 11,
  FLOAT64: 12,
} as const)
export type GgufValueTypeId = (typeof GgufValueType)[keyof typeof GgufValueType]

/** Bytes of a fixed-size value type (strings and arrays are variable). */
export const GGUF_VALUE_SIZES: Readonly<Record<number, number>> = Object.freeze({0: 1, 1: 1, 2: 2, 3: 2, 4: 4, 5: 4, 6: 4, 7: 1, 10: 8, 11: 8, 12: 8})

export type GgufScalar = number | bigint | boolean | string
export interface GgufArray {
  readonly itemType: GgufValueTypeId
  readonly items: readonly GgufScalar[]
}

/** One metadata entry. */
export interface GgufKV {
  readonly key: string
  readonly type: GgufValueTypeId
  readonly value: GgufScalar | GgufArray
}

export interface GgmlTypeInfo {
  readonly name: GgmlTypeName
  readonly id: number
  /** Elements per block. */
  readonly blockSize: number
  /** Bytes per block. */
  readonly typeSize: number
}

const ggml = {
  F32: {id: 0, blockSize: 1, typeSize: 4},
  F16: {id: 1, blockSize: 1, typeSize: 2},
  Q4_0: {id: 2, blockSize: 32, typeSize: 18},
  Q8_0: {id: 8, blockSize: 32, typeSize: 34},
  I8: {id: 24, blockSize: 1, typeSize: 1},
  I16: {id: 25, blockSize: 1, typeSize: 2},
  I32: {id: 26, blockSize: 1, typeSize: 4},
  I64: {id: 27, blockSize: 1, typeSize: 8},
  F64: {id: 28, blockSize: 1, typeSize: 8},
  BF16: {id: 30, blockSize: 1, typeSize: 2},
} as const
export type GgmlTypeName = keyof typeof ggml

/** The GGML types `lora` handles, by name. */
export const GGML_TYPES: Readonly<Record<GgmlTypeName, GgmlTypeInfo>> = Object.freeze(
  Object.fromEntries(Object.entries(ggml).map(([name, t]) => [name, Object.freeze({name, ...t})])) as unknown as Record<GgmlTypeName, GgmlTypeInfo>,
)

const byId = new Map<number, GgmlTypeInfo>(Object.values(GGML_TYPES).map((t) => [t.id, t]))

/** The type with this id, or undefined for types `lora` does not handle. */
export function ggmlTypeById(id: number): GgmlTypeInfo | undefined {
  return byId.get(id)
}

/** Bytes of a tensor with these GGML dims (ne[0] first). */
export function ggmlByteSize(type: GgmlTypeInfo, ne: readonly number[]): number {
  const count = ne.reduce((a, b) => a * b, 1)
  return (count / type.blockSize) * type.typeSize
}

/** Round `x` up to a multiple of `n` (gguf-py's `ggml_pad`). */
export function ggmlPad(x: number, n: number): number {
  return Math.ceil(x / n) * n
}
