/**
 * What a GGUF model file that llama.cpp loads will hold, planned before a
 * byte is written: each tensor's llama.cpp name, shape, GGML type, and how
 * its rows are reordered on the way (q/k rows to llama.cpp's RoPE order,
 * GPT-2's Conv1D weights transposed to [out, in]); the tensors the
 * architecture adds; the metadata (`general.*`, hyperparameters, tokenizer).
 *
 * Sources:
 * - a Hugging Face checkpoint with its config.json (and tokenizer files): names
 *   mapped, rows reordered, metadata built from config.json and the tokenizer;
 * - a GGUF file (llama.cpp's own conversion of the base): names, layout,
 *   metadata and tokenizer kept; only `general.file_type` is rewritten.
 * Types: every 1-D and norm tensor F32 (llama.cpp aborts on F16 norms); a
 * quantized job its GGUF scheme's GGML type (Q4_0, Q8_0); otherwise the job's
 * float dtype or the tensor's own.
 */
import {basename} from 'node:path'
import type {DType} from '../dtype.js'
import {InputError} from '../errors.js'
import type {GgmlTypeName, GgufKV} from '../formats/gguf-types.js'
import {sanitizeName} from '../formats/safetensors-header.js'
import {ggufTensorName, qkRole} from '../models/gguf-names.js'
import {readModelConfig} from '../models/model-config.js'
import type {ModelReader} from './model-reader.js'
import type {TensorJob} from './write-model.js'
import {QUANT_SCHEMES, QUANT_SCHEME_NAMES, QuantSchemeName} from '../quant/schemes.js'
import {GGML_QUANTIZATION_VERSION, GGUF_FILE_TYPES} from '../gguf/file-types.js'
import {GgufModelSpec, describeHfModel} from '../gguf/hyperparameters.js'
import {str, u32} from '../gguf/kv.js'
import {convertTokenizer} from '../gguf/tokenizer.js'


/** GGML type a float dtype is written as (F64 is narrowed to F32: llama.cpp computes in at most F32). */
const FLOAT_GGML: Readonly<Partial<Record<DType, GgmlTypeName>>> = Object.freeze({F32: 'F32', F16: 'F16', BF16: 'BF16', F64: 'F32'})
const GGML_FLOAT: Readonly<Partial<Record<GgmlTypeName, DType>>> = Object.freeze({F32: 'F32', F16: 'F16', BF16: 'BF16'})

export interface PlannedGgufTensor {
  /** llama.cpp's name. */
  readonly name: string
  /** The source's logical tensor (absent for computed tensors). */
  readonly source?: string
  /** Row-major shape as written ([out, in] for weights). */
  readonly shape: readonly number[]
  readonly type: GgmlTypeName
  /** Source bytes copied unchanged. */
  readonly copy: boolean
  /** Permute rows within each of this many heads (q/k of llama-family models). */
  readonly permuteHeads?: number
  /** The source stores it [in, out] (GPT-2's Conv1D): transposed before quantizing. */
  readonly transpose: boolean
  readonly job?: TensorJob
  /** Values of a tensor the architecture adds (Llama 3's rope_freqs). */
  readonly values?: Float32Array
}

export interface GgufModelPlan {
  readonly tensors: PlannedGgufTensor[]
  readonly kv: GgufKV[]
  /** The architecture description (Hugging Face sources only). */
  readonly spec?: GgufModelSpec
}

/** GGML types of the quantization schemes stored in GGUF (Q4_0, Q8_0), from the scheme registry. */
const GGUF_SCHEME_TYPES: readonly GgmlTypeName[] = Object.freeze(QUANT_SCHEME_NAMES.map((n) => QUANT_SCHEMES[n]).flatMap((s) => (s.format === 'gguf' ? [s.ggmlType] : [])))

/** The GGML type scheme `name` writes into GGUF. */
function ggufSchemeType(name: QuantSchemeName): GgmlTypeName {
  const scheme = QUANT_SCHEMES[name]
  if (scheme.format !== 'gguf') throw new RangeError(`${name} is stored as ${scheme.format}, not GGUF`)
  return scheme.ggmlType
}

/** The float dtype a plain GGUF tensor type stands for. */
export function ggmlFloatDtype(type: GgmlTypeName): DType | undefined {
  return GGML_FLOAT[type]
}

/**
 * The architecture description of a Hugging Face source, for GGUF output.
 * @throws InputError GGUF_NEEDS_CONFIG when there is no config.json beside the weights
 */
export async function describeSource(source: ModelReader): Promise<GgufModelSpec> {
  const found = await readModelConfig(source.folder)
  if (!found) {
    throw new InputError(
      'GGUF_NEEDS_CONFIG',
      `convert ${source.path}: no config.json beside the weights, and llama.cpp needs the architecture, hyperparameters and tokenizer; use the model's folder, or pass a llama.cpp GGUF of the base (--base model.gguf)`,
    )
  }
  return describeHfModel(found.config, found.file)
}

/** The row-major shape a source tensor has in the GGUF file (GPT-2's Conv1D weights transposed), for shape checks before planning. */
export function ggufOrientedShape(spec: GgufModelSpec | undefined, tensor: {name: string; shape: readonly number[]; encoding: string}): readonly number[] {
  const s = tensor.shape
  return spec?.isConv1D(tensor.name) && tensor.encoding === 'plain' && s.length === 2 ? [s[1]!, s[0]!] : s
}

function isNormOr1D(ggufName: string, shape: readonly number[]): boolean {
  return shape.filter((d) => d !== 1).length <= 1 || shape.length <= 1 || /_norm\.(weight|bias)$/.test(ggufName)
}

function floatType(dtype: DType, name: string, file: string): GgmlTypeName {
  const t = FLOAT_GGML[dtype]
  if (!t) throw new InputError('GGUF_UNSUPPORTED_DTYPE', `convert ${file}: tensor "${sanitizeName(name)}" is ${dtype}, which llama.cpp does not read as a weight`)
  return t
}

function generalKV(arch: string, name: string, types: readonly PlannedGgufTensor[]): GgufKV[] {
  const weights = types.filter((t) => t.shape.length >= 2 && !isNormOr1D(t.name, t.shape))
  const count = (type: GgmlTypeName) => weights.filter((t) => t.type === type).length
  const quant = GGUF_SCHEME_TYPES.find((q) => count(q) > 0)
  const float = (['F16', 'BF16', 'F32'] as const).reduce((best, t) => (count(t) > count(best) ? t : best), 'F32' as GgmlTypeName)
  return [
    str('general.architecture', arch),
    str('general.type', 'model'),
    str('general.name', name),
    u32('general.file_type', GGUF_FILE_TYPES[quant ?? float]!),
    u32('general.quantization_version', GGML_QUANTIZATION_VERSION),
  ]
}

/**
 * Plan a GGUF model from `source` and the jobs for its tensors.
 * @throws InputError for a source llama.cpp could not run from the file (no config.json, an unsupported architecture
 *   or tokenizer, a tensor without a llama.cpp name, an embedding whose rows disagree with vocab_size)
 */
export async function planGgufModel(source: ModelReader, jobs: ReadonlyMap<string, TensorJob>): Promise<GgufModelPlan> {
  if (source.format === 'gguf') return planFromGguf(source, jobs)
  const spec = await describeSource(source)
  const arch = spec.architecture
  const tensors: PlannedGgufTensor[] = []
  for (const t of source.tensors.values()) {
    if (spec.isIgnored(t.name)) continue
    const name = ggufTensorName(arch, t.name)
    if (!name) {
      throw new InputError('GGUF_UNKNOWN_TENSOR', `convert ${source.path}: tensor "${sanitizeName(t.name)}" has no llama.cpp name in the ${arch.gguf} architecture, so llama.cpp would not load it`)
    }
    if (name === 'token_embd.weight' && t.shape[0] !== spec.vocabSize) {
      throw new InputError('GGUF_VOCAB_MISMATCH', `convert ${source.path}: "${sanitizeName(t.name)}" has ${t.shape[0]} rows but config.json's vocab_size is ${spec.vocabSize}`)
    }
    const job = jobs.get(t.name)
    // a Conv1D weight still in the checkpoint's [in, out] (one already quantized by lora is [out, in])
    const transpose = spec.isConv1D(t.name) && t.encoding === 'plain'
    const shape = transpose ? [t.shape[1]!, t.shape[0]!] : t.shape
    const role = arch.permuteQK ? qkRole(t.name) : undefined
    const permuteHeads = role === 'q' ? spec.heads : role === 'k' ? spec.kvHeads : undefined
    const type: GgmlTypeName = isNormOr1D(name, shape) ? 'F32' : job?.quant ? ggufSchemeType(job.quant.scheme) : floatType(job?.dtype ?? t.dtype, t.name, source.path)
    const copy = !job && !transpose && permuteHeads === undefined && t.encoding === 'plain' && ggmlFloatDtype(type) === t.dtype
    tensors.push({name, source: t.name, shape, type, copy, permuteHeads, transpose, job})
  }
  const planned = new Set(tensors.map((t) => t.name))
  for (const extra of spec.extraTensors(planned)) {
    if ('values' in extra) tensors.push({name: extra.name, shape: [extra.values.length], type: 'F32', copy: false, transpose: false, values: extra.values})
    else {
      const of = tensors.find((t) => t.name === extra.copyOf)
      if (!of) throw new InputError('GGUF_UNKNOWN_TENSOR', `convert ${source.path}: ${extra.name} is a copy of ${extra.copyOf}, which the checkpoint lacks`)
      tensors.push({...of, name: extra.name})
    }
  }
  const found = await readModelConfig(source.folder)
  const tokenizer = await convertTokenizer(source.folder!, spec.vocabSize)
  const nameOrPath = found?.config._name_or_path
  const name = typeof nameOrPath === 'string' && nameOrPath.trim() ? basename(nameOrPath.trim()) : basename(source.folder!)
  return {tensors, kv: [...generalKV(arch.gguf, name, tensors), ...spec.kv, ...tokenizer.kv], spec}
}

/** Keys rewritten for the new file rather than copied from a GGUF source. */
const REWRITTEN_KEYS = new Set(['general.file_type', 'general.quantization_version', 'general.alignment'])

function planFromGguf(source: ModelReader, jobs: ReadonlyMap<string, TensorJob>): GgufModelPlan {
  const g = source.ggufFile!
  const arch = g.value('general.architecture')
  if (typeof arch !== 'string') throw new InputError('GGUF_NO_ARCHITECTURE', `read ${source.path}: no general.architecture, so llama.cpp cannot load it either`)
  if (g.value('general.type') === 'adapter') throw new InputError('GGUF_IS_ADAPTER', `read ${source.path}: a GGUF LoRA adapter, not a model`)
  const tensors: PlannedGgufTensor[] = []
  for (const t of source.tensors.values()) {
    const info = g.info(t.name)
    const job = jobs.get(t.name)
    let type: GgmlTypeName = info.type.name
    if (job && !isNormOr1D(t.name, t.shape)) type = job.quant ? ggufSchemeType(job.quant.scheme) : floatType(job.dtype ?? t.dtype, t.name, source.path)
    const copy = !job || (type === info.type.name && !job.transform && !job.quant)
    if (!copy && t.shape.length >= 2 && !GGML_FLOAT[type] && !GGUF_SCHEME_TYPES.includes(type)) throw new InputError('GGUF_UNSUPPORTED_DTYPE', `convert ${source.path}: cannot write "${sanitizeName(t.name)}" as ${type}`)
    tensors.push({name: t.name, source: t.name, shape: t.shape, type, copy, transpose: false, job})
  }
  const name = typeof g.value('general.name') === 'string' ? (g.value('general.name') as string) : basename(source.path)
  const kept = [...g.kv.values()].filter((e) => !REWRITTEN_KEYS.has(e.key) && !['general.architecture', 'general.type', 'general.name'].includes(e.key))
  return {tensors, kv: [...generalKV(arch, name, tensors), ...kept]}
}
