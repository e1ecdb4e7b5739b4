/**
 * `lora inspect`: what is in an adapter folder, a safetensors file, a packed
 * file, a (sharded) model, or a GGUF model or adapter, from headers alone
 * (and, for a pack, its null slot: one slot per stack, which must be zeros).
 */
import {stat} from 'node:fs/promises'
import {withFileContext} from './errors.js'
import {FileKind, detect} from './formats/detect.js'
import {LoraAdapter} from './formats/peft-adapter.js'
import {GgufSummary, inspectGguf} from './gguf/inspect-gguf.js'
import type {TensorInfo} from './formats/safetensors-header.js'
import {ShardedModel, openModel} from './formats/sharded-model.js'
import type {TensorSource} from './formats/tensor-source.js'
import {SafetensorsFile} from './formats/safetensors-file.js'
import {PackFile} from './formats/pack-file.js'
import {SharedBFile} from './formats/shared-b-file.js'
import {summarizePack} from './pack/inspect-pack.js'
import {summarizeSharedB} from './compress/inspect-shared-b.js'

export type InspectKind = 'adapter' | 'safetensors' | 'pack' | 'model' | 'gguf-model' | 'gguf-adapter'

export interface TensorSummary {
  name: string
  dtype: string
  shape: number[]
  bytes: number
}

export interface AdapterSummary {
  r: number
  lora_alpha: number
  use_rslora: boolean
  /** The config-level scaling (alpha/r or alpha/sqrt(r)). */
  scaling: number
  base_model: string | null
  target_modules: string[] | string | null
  fan_in_fan_out: boolean
  dtype: string | null
  modules: Array<{name: string; kind: 'linear' | 'embedding'; in: number; out: number; r: number; scaling: number}>
  modules_to_save: string[]
  warnings: string[]
}

export interface InspectReport {
  path: string
  kind: InspectKind
  /** Bytes on disk (all shards for a sharded model). */
  bytes: number
  tensors: TensorSummary[]
  metadata: Record<string, string>
  adapter?: AdapterSummary
  /** Filled for `lora-pack` files by the pack module (`PackSummary`), for `lora-pack-shared-b` by the compress module (`SharedBSummary`). */
  pack?: Record<string, unknown>
  /** Shard files of a sharded model. */
  shards?: string[]
  /** GGUF files: header, metadata and what they are (see docs/formats.md). */
  gguf?: GgufSummary
}

/** `__metadata__.format` values of packed files (see docs/formats.md). */
export const PACK_FORMATS: ReadonlySet<string> = new Set(['lora-pack', 'lora-pack-shared-b'])

function summarizeTensors(tensors: ReadonlyMap<string, TensorInfo>): TensorSummary[] {
  return [...tensors.values()].map((t) => ({name: t.name, dtype: t.dtype, shape: [...t.shape], bytes: t.byteLength}))
}

function plainMetadata(metadata: ReadonlyMap<string, string>): Record<string, string> {
  const out: Record<string, string> = Object.create(null)
  for (const [k, v] of metadata) out[k] = v
  return out
}

/** Describe an adapter folder. */
export async function inspectAdapter(dir: string): Promise<InspectReport> {
  const adapter = await LoraAdapter.load(dir)
  try {
    const c = adapter.config
    return {
      path: dir,
      kind: 'adapter',
      bytes: adapter.file.bytes,
      tensors: summarizeTensors(adapter.file.tensors),
      metadata: plainMetadata(adapter.file.metadata),
      adapter: {
        r: c.r,
        lora_alpha: c.loraAlpha,
        use_rslora: c.useRslora,
        scaling: c.useRslora ? c.loraAlpha / Math.sqrt(c.r) : c.loraAlpha / c.r,
        base_model: c.baseModelNameOrPath,
        target_modules: c.targetModules === null ? null : typeof c.targetModules === 'string' ? c.targetModules : [...c.targetModules],
        fan_in_fan_out: c.fanInFanOut,
        dtype: adapter.dtype ?? null,
        modules: [...adapter.modules.values()].map((m) => ({name: m.name, kind: m.kind, in: m.in, out: m.out, r: m.r, scaling: m.scaling})),
        modules_to_save: adapter.extraTensors.map((t) => t.name),
        warnings: [...adapter.warnings],
      },
    }
  } finally {
    await adapter.close()
  }
}

function describeSource(path: string, kind: InspectKind, source: TensorSource): InspectReport {
  return {path, kind, bytes: source.bytes, tensors: summarizeTensors(source.tensors), metadata: plainMetadata(source.metadata)}
}

/** A packed file's report: the generic part, and the summary its format's module gives. */
function describePacked(summarize: (file: SafetensorsFile) => object, check: (file: SafetensorsFile) => Promise<void>): (path: string) => Promise<InspectReport> {
  return async (path) => {
    const source = await openModel(path)
    try {
      const pack = summarize(source as SafetensorsFile) as Record<string, unknown>
      // the null slot is read (one slot per stack): a request without an adapter gets it
      await check(source as SafetensorsFile)
      return {...describeSource(path, 'pack', source), pack}
    } finally {
      await source.close()
    }
  }
}

/** Any tensor file or model: its tensors, metadata and (sharded) its shards. */
async function describeModel(path: string): Promise<InspectReport> {
  const info = await withFileContext('read', path, () => stat(path))
  const source = await openModel(path)
  try {
    if (source instanceof ShardedModel) return {...describeSource(path, 'model', source), shards: [...source.shards.keys()]}
    return describeSource(path, info.isDirectory() ? 'model' : 'safetensors', source)
  } finally {
    await source.close()
  }
}

/** A GGUF model or LoRA adapter (llama.cpp): its metadata, tokenizer or adapter alpha, tensors and GGML types. */
async function describeGguf(path: string): Promise<InspectReport> {
  const g = await inspectGguf(path)
  return {path, kind: g.gguf.type === 'adapter' ? 'gguf-adapter' : 'gguf-model', bytes: g.bytes, tensors: g.tensors, metadata: {}, gguf: g.gguf}
}

/** How each kind `detect` names is described; other kinds are read as a tensor file or model. */
const DESCRIBERS: Partial<Record<FileKind, (path: string) => Promise<InspectReport>>> = Object.freeze({
  adapter: inspectAdapter,
  gguf: describeGguf,
  pack: describePacked(summarizePack, (file) => PackFile.fromFile(file).checkNullSlot()),
  'shared-b': describePacked(summarizeSharedB, (file) => SharedBFile.fromFile(file).checkNullSlot()),
})

/**
 * Describe whatever is at `path` (headers only: fast and small for any file size).
 * @throws InputError for missing paths and malformed files
 */
export async function inspectPath(path: string): Promise<InspectReport> {
  const kind = await detect(path)
  return (DESCRIBERS[kind] ?? describeModel)(path)
}
