/**
 * Typed GGUF metadata entries, as gguf-py's `GGUFWriter.add_*` methods type
 * them (llama.cpp's loader checks the type of every key it reads: a count
 * written as INT32 where it expects UINT32 is refused).
 */
import {GgufKV, GgufScalar, GgufValueType, GgufValueTypeId} from '../formats/gguf-types.js'

/** A UINT32 entry (counts, lengths, token ids, `general.file_type`). */
export function u32(key: string, value: number): GgufKV {
  if (!Number.isInteger(value) || value < 0 || value > 0xffffffff) throw new RangeError(`GGUF key "${key}" needs a UINT32, got ${value}`)
  return {key, type: GgufValueType.UINT32, value}
}

/** A FLOAT32 entry (epsilons, rope base and factors, `adapter.lora.alpha`). */
export function f32(key: string, value: number): GgufKV {
  if (!Number.isFinite(value)) throw new RangeError(`GGUF key "${key}" needs a finite FLOAT32, got ${value}`)
  return {key, type: GgufValueType.FLOAT32, value}
}

/** A BOOL entry. */
export function bool(key: string, value: boolean): GgufKV {
  return {key, type: GgufValueType.BOOL, value}
}

/** A STRING entry. */
export function str(key: string, value: string): GgufKV {
  return {key, type: GgufValueType.STRING, value}
}

/** An ARRAY entry of one item type. */
export function array(key: string, itemType: GgufValueTypeId, items: readonly GgufScalar[]): GgufKV {
  return {key, type: GgufValueType.ARRAY, value: {itemType, items}}
}
