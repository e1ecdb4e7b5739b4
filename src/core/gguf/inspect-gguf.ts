/**
 * What a GGUF file holds, from its header alone: a model (architecture,
 * file type, hyperparameters, tokenizer) or a LoRA adapter (architecture,
 * alpha, the base tensors it changes), every metadata entry (long arrays
 * summarized) and every tensor with its GGML type, shape and bytes.
 */
import {GgufFile} from '../formats/gguf-reader.js'
import {GgufArray, GgufKV, GgufValueType} from '../formats/gguf-types.js'
import {sanitizeName} from '../formats/safetensors-header.js'
import {GGUF_FILE_TYPES} from './file-types.js'

/** Array items shown in full before the rest is summarized (token lists run to 256k). */
export const INSPECT_ARRAY_ITEMS = 8
/** Strings longer than this are cut in the report (chat templates run to kilobytes). */
export const INSPECT_STRING_CHARS = 200

const VALUE_TYPE_NAMES: Readonly<Record<number, string>> = Object.freeze(Object.fromEntries(Object.entries(GgufValueType).map(([k, v]) => [v, k])))
const FILE_TYPE_NAMES: Readonly<Record<number, string>> = Object.freeze(Object.fromEntries(Object.entries(GGUF_FILE_TYPES).map(([k, v]) => [v, k === 'F32' ? 'ALL_F32' : `MOSTLY_${k}`])))

export interface GgufKVSummary {
  readonly key: string
  /** GGUF value type (`UINT32`, `STRING`, `ARRAY[STRING]`, …). */
  readonly type: string
  /** The value; arrays longer than {@link INSPECT_ARRAY_ITEMS} and long strings are cut. */
  readonly value: string | number | boolean | Array<string | number | boolean>
  /** Items of an array. */
  readonly count?: number
}

export interface GgufSummary {
  readonly version: number
  /** `model` or `adapter` (`general.type`; a model when absent). */
  readonly type: 'model' | 'adapter'
  readonly architecture: string | null
  readonly name: string | null
  /** `general.file_type` as llama.cpp names it (`MOSTLY_Q4_0`), or null when absent. */
  readonly file_type: string | null
  readonly alignment: number
  /** Tensors by GGML type: type → count. */
  readonly tensor_types: Record<string, number>
  readonly tokenizer: {model: string; tokens: number; pre: string | null} | null
  readonly adapter: {type: string | null; alpha: number | null; tensors_adapted: number} | null
  readonly kv: GgufKVSummary[]
}

export interface GgufTensorSummary {
  name: string
  /** GGML type name (F32, F16, BF16, Q4_0, Q8_0, …). */
  dtype: string
  /** Row-major shape ([out, in] for weights); GGUF's ne[] reversed. */
  shape: number[]
  bytes: number
}

function plain(v: unknown): string | number | boolean {
  if (typeof v === 'bigint') return Number.isSafeInteger(Number(v)) ? Number(v) : v.toString()
  if (typeof v === 'string') return sanitizeName(v, INSPECT_STRING_CHARS)
  return v as number | boolean
}

function summarizeKV(e: GgufKV): GgufKVSummary {
  if (e.type === GgufValueType.ARRAY) {
    const a = e.value as GgufArray
    return {key: e.key, type: `ARRAY[${VALUE_TYPE_NAMES[a.itemType]}]`, value: a.items.slice(0, INSPECT_ARRAY_ITEMS).map(plain), count: a.items.length}
  }
  return {key: e.key, type: VALUE_TYPE_NAMES[e.type] ?? String(e.type), value: plain(e.value)}
}

/**
 * Describe a GGUF file.
 * @throws InputError from the reader for a malformed file (naming it)
 */
export async function inspectGguf(path: string): Promise<{bytes: number; tensors: GgufTensorSummary[]; gguf: GgufSummary}> {
  const g = await GgufFile.open(path)
  try {
    const str = (key: string) => (typeof g.value(key) === 'string' ? (g.value(key) as string) : null)
    const num = (key: string) => (typeof g.value(key) === 'number' ? (g.value(key) as number) : null)
    const tensors = [...g.tensors.values()].map((t) => ({name: t.name, dtype: t.type.name, shape: [...t.shape], bytes: t.byteLength}))
    const types: Record<string, number> = {}
    for (const t of tensors) types[t.dtype] = (types[t.dtype] ?? 0) + 1
    const tokens = g.value('tokenizer.ggml.tokens') as GgufArray | undefined
    const isAdapter = str('general.type') === 'adapter'
    const fileType = num('general.file_type')
    return {
      bytes: g.bytes,
      tensors,
      gguf: {
        version: g.version,
        type: isAdapter ? 'adapter' : 'model',
        architecture: str('general.architecture'),
        name: str('general.name'),
        file_type: fileType === null ? null : (FILE_TYPE_NAMES[fileType] ?? `type ${fileType}`),
        alignment: g.alignment,
        tensor_types: types,
        tokenizer: str('tokenizer.ggml.model') ? {model: str('tokenizer.ggml.model')!, tokens: tokens?.items.length ?? 0, pre: str('tokenizer.ggml.pre')} : null,
        adapter: isAdapter ? {type: str('adapter.type'), alpha: num('adapter.lora.alpha'), tensors_adapted: tensors.filter((t) => t.name.endsWith('.lora_a')).length} : null,
        kv: [...g.kv.values()].map(summarizeKV),
      },
    }
  } finally {
    await g.close()
  }
}
