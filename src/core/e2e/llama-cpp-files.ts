/**
 * The files the llama.cpp peer loads, written by `lora` from the benchmark's
 * own base and adapters:
 *
 * - the model as a GGUF (`writeGgufModel`, the writer of `lora quantize
 *   --format gguf`) in the base dtype of the run: f32 → F32, f16 → F16,
 *   q4 → Q4_0 (the same quantizer as the runtime's 4-bit base, so both engines
 *   hold the same weights); the embedding table stays F32 as in the runtime,
 *   norms F32 as llama.cpp needs. From `--model` (a Hugging Face folder or a
 *   GGUF, with its tokenizer) or, for a synthetic base, from a Hugging Face
 *   folder written first (the weights in F32, config.json, and the
 *   SentencePiece-style tokenizer of `lora synth base`: llama.cpp needs a
 *   vocabulary in the file), removed once the GGUF is written;
 * - each adapter the requests ask for as a GGUF LoRA adapter by `lora
 *   export` (`exportAdapters`, F16: its default and llama.cpp's converter's):
 *   from the pack (`--pack`), or from a PEFT folder written from a synthetic
 *   adapter's factors (removed once exported). Only those adapters: llama.cpp
 *   loads what it serves, not the 1,000 the routed strategies stack.
 */
import {mkdir, rm, stat, writeFile} from 'node:fs/promises'
import {join} from 'node:path'
import {fromFloat} from '../dtype.js'
import {UsageError} from '../errors.js'
import {exportAdapters} from '../export/export-adapters.js'
import {loraKeys, peftLoraConfig, writeAdapterFiles} from '../formats/peft-adapter-writer.js'
import {SafetensorsWriter} from '../formats/safetensors-writer.js'
import {SINGLE_MODEL_NAME} from '../formats/sharded-model.js'
import {ALL_PROJECTIONS, Projection} from '../models/llama.js'
import {ModelReader} from '../model-io/model-reader.js'
import {writeGgufModel} from '../model-io/write-gguf-model.js'
import type {TensorJob} from '../model-io/write-model.js'
import {Q4_0_BLOCK_SIZE} from '../quant/q4-0.js'
import {resolveQuantOptions} from '../quant/schemes.js'
import {projectionShapeOf} from '../runtime/adapter-factors.js'
import type {DecoderConfig} from '../runtime/decoder-config.js'
import type {DecoderWeights} from '../runtime/decoder-weights.js'
import {linearValues} from '../runtime/linear-weight.js'
import {minimumVocab, synthTokenizer} from '../synth/tokenizer.js'
import type {E2eAdapterSet} from './adapter-set.js'
import type {BaseDtype} from './base-dtype.js'

/** GGML type of the model's linear weights per base dtype. */
export const PEER_MODEL_TYPES: Readonly<Record<BaseDtype, string>> = Object.freeze({f32: 'F32', f16: 'F16', q4: 'Q4_0'})
/** Tensor type of the exported adapters (`lora export`'s default, as llama.cpp's convert_lora_to_gguf.py writes). */
export const PEER_ADAPTER_TYPE = 'F16'

/** Names of the embedding table in a Hugging Face checkpoint and in a GGUF: kept F32, as the runtime keeps it. */
const EMBEDDINGS = new Set(['model.embed_tokens.weight', 'token_embd.weight'])

/**
 * Why a synthetic base cannot be written for llama.cpp, or undefined when it can.
 * (A model from `--model` brings its own tokenizer and architecture.)
 */
export function syntheticPeerProblem(config: DecoderConfig): string | undefined {
  const least = minimumVocab('spm')
  if (config.vocab < least) return `llama.cpp needs a tokenizer in the GGUF, and a synthetic vocabulary of ${config.vocab} tokens is below the ${least} the SentencePiece-style tokenizer of lora synth base needs (give --vocab ${least} or more)`
  if (config.architecture !== 'llama') return `a synthetic ${config.architecture} base has no GGUF route (llama only)`
  return undefined
}

/** The jobs that give each 2-D tensor of `reader` the base dtype's GGML type. */
export function peerModelJobs(reader: ModelReader, dtype: BaseDtype): Map<string, TensorJob> {
  const q4 = resolveQuantOptions('q4_0', undefined, false, 'gguf').quant
  const jobs = new Map<string, TensorJob>()
  for (const t of reader.tensors.values()) {
    if (t.shape.length !== 2) continue
    const cols = t.shape[1]!
    if (EMBEDDINGS.has(t.name) || dtype === 'f32') jobs.set(t.name, {dtype: 'F32'})
    else if (dtype === 'f16') jobs.set(t.name, {dtype: 'F16'})
    else jobs.set(t.name, cols % Q4_0_BLOCK_SIZE === 0 ? {quant: q4} : {dtype: 'F32'})
  }
  return jobs
}

/** A Hugging Face `config.json` for a (synthetic) Llama decoder config. */
function llamaConfigJson(c: DecoderConfig): Record<string, unknown> {
  return {
    architectures: ['LlamaForCausalLM'],
    model_type: 'llama',
    hidden_size: c.hidden,
    intermediate_size: c.intermediate,
    num_hidden_layers: c.layers,
    num_attention_heads: c.heads,
    num_key_value_heads: c.kvHeads,
    head_dim: c.headDim,
    vocab_size: c.vocab,
    hidden_act: 'silu',
    max_position_embeddings: c.maxPositions,
    rms_norm_eps: c.rmsEps,
    rope_theta: c.ropeTheta,
    tie_word_embeddings: c.tieEmbeddings,
    bos_token_id: c.bosTokenId,
    eos_token_id: c.eosTokenIds[0] ?? null,
    torch_dtype: 'float32',
  }
}

/** The shape of a Llama decoder tensor by its Hugging Face name. */
function tensorShape(c: DecoderConfig, name: string): number[] {
  if (name.endsWith('norm.weight')) return [c.hidden]
  if (name === 'model.embed_tokens.weight' || name === 'lm_head.weight') return [c.vocab, c.hidden]
  const p = /\.(\w+_proj)\.weight$/.exec(name)?.[1]
  if (p && (ALL_PROJECTIONS as readonly string[]).includes(p)) return projectionShapeOf(c, p as Projection)
  throw new RangeError(`no Llama tensor shape for "${name}"`)
}

/** Write `weights` (a synthetic Llama) as a Hugging Face folder with a tokenizer, tensor by tensor (F32). */
async function writeSyntheticFolder(weights: DecoderWeights, dir: string): Promise<void> {
  const c = weights.config
  const tokenizer = synthTokenizer('spm', c.vocab)
  if (!tokenizer) throw new UsageError('BAD_FLAG', syntheticPeerProblem(c) ?? 'no tokenizer')
  await mkdir(dir, {recursive: true})
  const names = [...weights.names]
  const specs = names.map((name) => ({name, dtype: 'F32' as const, shape: tensorShape(c, name)}))
  const writer = await SafetensorsWriter.create(join(dir, SINGLE_MODEL_NAME), specs, {metadata: {format: 'pt'}})
  try {
    for (const s of specs) {
      const values = s.shape.length === 1 ? await weights.vector(s.name) : linearValues(await weights.linear(s.name))
      await writer.writeTensor(s.name, fromFloat('F32', values))
    }
    await writer.commit()
  } catch (error) {
    await writer.abort()
    throw error
  }
  await writeFile(join(dir, 'config.json'), `${JSON.stringify(llamaConfigJson(c), null, 2)}\n`)
  for (const [file, content] of Object.entries(tokenizer)) await writeFile(join(dir, file), `${JSON.stringify(content, null, 2)}\n`)
}

/** Write one synthetic adapter's factors as a PEFT folder (B with its scaling folded in; alpha = r, so PEFT's scaling is 1). */
async function writeSyntheticPeft(adapters: E2eAdapterSet, name: string, dir: string): Promise<void> {
  const factors = await adapters.factors(name, 'stacks')
  const tensors = [...factors.modules].flatMap(([module, m]) => {
    const [aKey, bKey] = loraKeys(module)
    return [
      {name: aKey, dtype: 'F32' as const, shape: [m.r, m.in], data: fromFloat('F32', m.a)},
      {name: bKey, dtype: 'F32' as const, shape: [m.out, m.r], data: fromFloat('F32', m.scaling === 1 ? m.b : m.b.map((v) => v * m.scaling))},
    ]
  })
  const ranks = [...factors.modules].map(([module, m]) => [module, m.r] as const)
  const r = ranks[0]![1]
  const pattern = Object.fromEntries(ranks.filter(([, k]) => k !== r))
  const targets = [...new Set([...factors.modules.keys()].map((m) => m.split('.').at(-1)!))]
  await mkdir(dir, {recursive: true})
  await writeAdapterFiles(dir, peftLoraConfig({r, lora_alpha: r, target_modules: targets, rank_pattern: pattern, alpha_pattern: pattern}), tensors)
}

/** What `writePeerFiles` needs. */
export interface PeerFilesOptions {
  /** An empty folder to write into. */
  readonly dir: string
  /** `--model` (a Hugging Face folder or a GGUF), or undefined for the synthetic base in `weights`. */
  readonly model?: string
  /** The base as read (float32, before `--base-dtype`). */
  readonly weights: DecoderWeights
  readonly baseDtype: BaseDtype
  readonly adapters: E2eAdapterSet
}

/** The model GGUF the peer loads. */
export interface PeerModelFile {
  readonly path: string
  readonly bytes: number
  /** Seconds spent writing it. */
  readonly seconds: number
}

/**
 * Write the model GGUF (see the module comment).
 * @throws UsageError for a synthetic base llama.cpp cannot hold; InputError from the GGUF writer (a model it cannot convert)
 */
export async function writePeerModel(o: PeerFilesOptions): Promise<PeerModelFile> {
  const t0 = performance.now()
  const out = join(o.dir, `model-${PEER_MODEL_TYPES[o.baseDtype].toLowerCase()}.gguf`)
  let source = o.model
  const scratch = join(o.dir, 'hf')
  if (!source) {
    await writeSyntheticFolder(o.weights, scratch)
    source = scratch
  }
  const reader = await ModelReader.open(source)
  try {
    await writeGgufModel({source: reader, out, format: 'gguf', jobs: peerModelJobs(reader, o.baseDtype)})
  } finally {
    await reader.close()
    if (!o.model) await rm(scratch, {recursive: true, force: true})
  }
  return {path: out, bytes: (await stat(out)).size, seconds: (performance.now() - t0) / 1000}
}

/** The adapters exported for the peer. */
export interface PeerAdapterFiles {
  /** Adapter name → GGUF file. */
  readonly files: ReadonlyMap<string, string>
  readonly bytes: number
  readonly seconds: number
}

/**
 * Export `names` by `lora export` for the model GGUF `model` (see the module comment).
 * @throws InputError from the export (an adapter that does not fit the model)
 */
export async function exportPeerAdapters(o: PeerFilesOptions, model: string, names: readonly string[]): Promise<PeerAdapterFiles> {
  const t0 = performance.now()
  const folder = join(o.dir, 'adapters')
  await mkdir(folder, {recursive: true})
  const files = new Map<string, string>()
  let bytes = 0
  for (const [i, name] of names.entries()) {
    const out = join(folder, `${i}.gguf`)
    if (o.adapters.kind === 'pack') {
      await exportAdapters({input: o.adapters.source, adapter: name, base: model, out, format: 'gguf', dtype: PEER_ADAPTER_TYPE})
    } else {
      const peft = join(o.dir, 'peft')
      try {
        await writeSyntheticPeft(o.adapters, name, peft)
        await exportAdapters({input: peft, base: model, out, format: 'gguf', dtype: PEER_ADAPTER_TYPE})
      } finally {
        await rm(peft, {recursive: true, force: true})
      }
    }
    files.set(name, out)
    bytes += (await stat(out)).size
  }
  return {files, bytes, seconds: (performance.now() - t0) / 1000}
}
