/**
 * A deterministic synthetic Llama-style base model: `model.safetensors` (or
 * shards with `model.safetensors.index.json`), `config.json`, and a small
 * tokenizer (`tokenizer.json`, `tokenizer_config.json`: SentencePiece-style
 * for llama, byte-level BPE for qwen2) so the base converts to a GGUF
 * llama.cpp loads. `--arch qwen2` adds q/k/v biases.
 *
 * Weights: linear [out, in] ~ N(0, 1/in) (about 1/sqrt(fan_in), as trained
 * models are), embeddings and lm_head ~ N(0, 1/hidden), norm weights
 * 1 + N(0, 0.02²). Tensors are generated and written in row chunks, so peak
 * memory is one chunk, not the model.
 */
import {writeFile} from 'node:fs/promises'
import {join} from 'node:path'
import {AtomicDirectory, withAtomic} from '../io/atomic-output.js'
import {MODEL_OUTPUT_KIND, checkOutputs} from '../io/output-target.js'
import {assertDiskFits} from '../io/resources.js'
import {FloatOutputDType, fromFloat} from '../dtype.js'
import {UsageError} from '../errors.js'
import {SafetensorsWriter} from '../formats/safetensors-writer.js'
import {SHARD_INDEX_NAME, SINGLE_MODEL_NAME} from '../formats/sharded-model.js'
import {LlamaDims, llamaConfig, llamaTensorShapes, qwen2Config, torchDtypeName} from '../models/llama.js'
import {SynthTokenizerKind, synthTokenizer} from './tokenizer.js'
import type {ProgressCallback} from '../progress.js'
import {Rng} from '../random.js'
import {shapeSize} from '../shape.js'
import {DTYPES} from '../dtype.js'

/** Elements generated per write: bounds memory for any tensor size. */
export const SYNTH_CHUNK_ELEMENTS = 1 << 22

/** The architectures a synthetic base can have: config.json, tensors (with q/k/v biases for Qwen2) and tokenizer kind. */
export const SYNTH_ARCHITECTURES = Object.freeze({
  llama: {config: llamaConfig, attentionBias: false, tokenizer: 'spm' as SynthTokenizerKind},
  qwen2: {config: qwen2Config, attentionBias: true, tokenizer: 'byte-level' as SynthTokenizerKind},
})
export type SynthArchitecture = keyof typeof SYNTH_ARCHITECTURES

export interface SynthBaseOptions extends LlamaDims {
  /** Default llama. */
  arch?: SynthArchitecture
  out: string
  vocab: number
  dtype: FloatOutputDType
  seed: number
  /** Split into shards of at most this many bytes of tensor data (a tensor larger than this gets a shard of its own). */
  shardSize?: number
  force?: boolean
  onProgress?: ProgressCallback
}

export interface SynthBaseResult {
  out: string
  files: string[]
  tensors: number
  parameters: number
  bytes: number
  dtype: FloatOutputDType
  arch: SynthArchitecture
  /** Files of the tokenizer written beside the weights (empty when --vocab is below what a tokenizer needs). */
  tokenizer: string[]
}

interface PlannedTensor {
  name: string
  shape: number[]
  role: 'embedding' | 'norm' | 'linear' | 'head' | 'bias'
}

/** Assign tensors to shards in order, each holding at most `shardSize` bytes (or one tensor). */
export function planShards<T extends {shape: readonly number[]}>(tensors: readonly T[], bytesPerElement: number, shardSize?: number): T[][] {
  if (!shardSize) return [tensors.slice()]
  const shards: T[][] = []
  let current: T[] = []
  let used = 0
  for (const t of tensors) {
    const bytes = shapeSize(t.shape) * bytesPerElement
    if (current.length > 0 && used + bytes > shardSize) {
      shards.push(current)
      current = []
      used = 0
    }
    current.push(t)
    used += bytes
  }
  if (current.length > 0) shards.push(current)
  return shards
}

/** HF shard file name: `model-00001-of-00003.safetensors`. */
export function shardFileName(index: number, count: number): string {
  return `model-${String(index + 1).padStart(5, '0')}-of-${String(count).padStart(5, '0')}.safetensors`
}

function tensorStd(t: PlannedTensor, dims: LlamaDims): {std: number; mean: number} {
  if (t.role === 'norm') return {std: 0.02, mean: 1}
  if (t.role === 'bias') return {std: 0.02, mean: 0}
  if (t.role === 'linear') return {std: 1 / Math.sqrt(t.shape[1]!), mean: 0}
  return {std: 1 / Math.sqrt(dims.hidden), mean: 0}
}

/**
 * Write a synthetic base model folder.
 * @throws UsageError for non-positive dims or an existing `out` without `force`
 */
export async function synthesizeBase(options: SynthBaseOptions): Promise<SynthBaseResult> {
  for (const [flag, v] of [
    ['--hidden', options.hidden],
    ['--intermediate', options.intermediate],
    ['--layers', options.layers],
    ['--vocab', options.vocab],
  ] as const) {
    if (!Number.isSafeInteger(v) || v <= 0) throw new UsageError('BAD_FLAG', `${flag} must be a positive integer (got ${v})`)
  }
  if (options.shardSize !== undefined && options.shardSize <= 0) throw new UsageError('BAD_FLAG', '--shard-size must be positive')
  await checkOutputs([{path: options.out, kind: 'folder', folderKind: MODEL_OUTPUT_KIND, flag: '--out'}], {force: options.force})
  const arch = SYNTH_ARCHITECTURES[options.arch ?? 'llama']
  if (!arch) throw new UsageError('BAD_FLAG', `--arch must be one of ${Object.keys(SYNTH_ARCHITECTURES).join(', ')} (got ${options.arch})`)
  const planned: PlannedTensor[] = llamaTensorShapes(options, {attentionBias: arch.attentionBias})
  const tokenizer = synthTokenizer(arch.tokenizer, options.vocab)
  const elementBytes = DTYPES[options.dtype].bytes
  const shards = planShards(planned, elementBytes, options.shardSize)
  const files = shards.length === 1 ? [SINGLE_MODEL_NAME] : shards.map((_, i) => shardFileName(i, shards.length))
  const parameters = planned.reduce((s, t) => s + shapeSize(t.shape), 0)
  assertDiskFits([{path: options.out, bytes: parameters * elementBytes, what: 'the base model'}], `synth base ${options.out}`)
  let done = 0
  await withAtomic(await AtomicDirectory.create(options.out, {force: options.force, kind: MODEL_OUTPUT_KIND}), async (dir) => {
    const weightMap: Record<string, string> = {}
    for (const [i, shard] of shards.entries()) {
      const writer = await SafetensorsWriter.create(
        join(dir.path, files[i]!),
        shard.map((t) => ({name: t.name, dtype: options.dtype, shape: t.shape})),
        {metadata: {format: 'pt'}},
      )
      try {
        for (const t of shard) {
          weightMap[t.name] = files[i]!
          const {std, mean} = tensorStd(t, options)
          const rng = new Rng(options.seed, 'base', t.name)
          const total = shapeSize(t.shape)
          for (let start = 0; start < total; start += SYNTH_CHUNK_ELEMENTS) {
            const chunk = rng.fillNormal(new Float32Array(Math.min(SYNTH_CHUNK_ELEMENTS, total - start)), std, mean)
            await writer.writeTensorBytes(t.name, start * elementBytes, fromFloat(options.dtype, chunk))
          }
          options.onProgress?.({stage: 'tensors', done: ++done, total: planned.length})
        }
        await writer.commit()
      } catch (error) {
        await writer.abort()
        throw error
      }
    }
    if (shards.length > 1) {
      const index = {metadata: {total_size: parameters * elementBytes}, weight_map: weightMap}
      await writeFile(join(dir.path, SHARD_INDEX_NAME), `${JSON.stringify(index, null, 2)}\n`)
    }
    await writeFile(join(dir.path, 'config.json'), `${JSON.stringify(arch.config(options, torchDtypeName(options.dtype)), null, 2)}\n`)
    for (const [name, content] of Object.entries(tokenizer ?? {})) await writeFile(join(dir.path, name), `${JSON.stringify(content, null, 2)}\n`)
  })
  const tokenizerFiles = Object.keys(tokenizer ?? {})
  return {
    out: options.out,
    files: [...files, ...(shards.length > 1 ? [SHARD_INDEX_NAME] : []), 'config.json', ...tokenizerFiles],
    tensors: planned.length,
    parameters,
    bytes: parameters * elementBytes,
    dtype: options.dtype,
    arch: options.arch ?? 'llama',
    tokenizer: tokenizerFiles,
  }
}
