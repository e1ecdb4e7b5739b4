/**
 * `lora quantize`: re-encode a base model's linear weights with a scheme
 * (`quant/schemes.ts`), streaming tensor by tensor. Tensors the scheme cannot
 * hold (a row that is not a whole number of blocks, a 1-D tensor) stay in
 * their float dtype and are reported, as llama.cpp's converter falls back to F16.
 */
import type {DType} from '../dtype.js'
import {UsageError} from '../errors.js'
import type {ProgressCallback} from '../progress.js'
import {describeSource, ggufOrientedShape} from './gguf-model-plan.js'
import {isConv1DWeight} from '../models/conv1d.js'
import {readModelConfig} from '../models/model-config.js'
import {shapeSize} from '../shape.js'
import {MODEL_OUTPUT_KIND, checkOutputs} from '../io/output-target.js'
import {ModelReader} from './model-reader.js'
import {QUANT_SCHEMES, QUANT_SCHEME_NAMES, QuantSchemeName, resolveQuantOptions, schemeOutput, transposesConv1D} from '../quant/schemes.js'
import {SelectionOptions, quantizeSelector} from '../quant/selection.js'
import type {TensorJob, WriteModelResult} from './write-model.js'
import {writeModelOutput} from './write-output.js'

export interface QuantizeModelOptions extends SelectionOptions {
  /** Model file, index or folder. */
  readonly model: string
  readonly out: string
  readonly scheme: QuantSchemeName
  /** Default: the scheme's (`QuantScheme.defaultBlockSize`). */
  readonly blockSize?: number
  readonly doubleQuant?: boolean
  /** Default: the scheme's own (`QuantScheme.format`). */
  readonly format?: 'safetensors' | 'gguf'
  readonly force?: boolean
  readonly onProgress?: ProgressCallback
  /** Threads that encode (default 1, the calling thread; `lora quantize` defaults to every core). */
  readonly threads?: number
}

export interface KeptTensor {
  readonly name: string
  readonly reason: string
}

export interface QuantizeModelResult {
  readonly out: string
  readonly format: 'safetensors' | 'gguf'
  readonly scheme: QuantSchemeName
  readonly block_size: number
  readonly double_quant: boolean
  readonly files: string[]
  /** Tensors encoded with the scheme. */
  readonly quantized: number
  /** Parameters in quantized tensors / in all tensors. */
  readonly quantized_parameters: number
  readonly parameters: number
  /** Selected tensors left in float, with the reason. */
  readonly kept: KeptTensor[]
  readonly bytes_in: number
  readonly bytes_out: number
}

/**
 * Quantize a model.
 * @throws UsageError for impossible flag combinations or an existing output; InputError for unreadable models,
 *   an already-quantized model, or values the scheme cannot encode (NaN, ±Infinity, f16 scale overflow)
 */
export async function quantizeModel(options: QuantizeModelOptions): Promise<QuantizeModelResult> {
  const {quant, format} = resolveQuantOptions(options.scheme, options.blockSize, options.doubleQuant, options.format)
  await checkOutputs([{path: options.out, kind: format === 'gguf' ? 'file' : 'folder', folderKind: MODEL_OUTPUT_KIND, flag: '--out'}], {force: options.force, inputs: [options.model]})
  const source = await ModelReader.open(options.model)
  try {
    if (source.format === 'gguf' && format !== 'gguf') throw new UsageError('BAD_FLAG', `--scheme ${quant.scheme}: a GGUF model is written as GGUF (${schemesStoredAsGguf()}); ${quant.scheme} needs the Hugging Face folder of the model`)
    const already = [...source.tensors.values()].find((t) => t.encoding !== 'plain')
    if (already) throw new UsageError('ALREADY_QUANTIZED', `quantize ${options.model}: tensor "${already.name}" is already ${already.encoding}; merge into it with \`lora merge --from-quantized\` instead`)
    const select = quantizeSelector(options)
    // GPT-2's Conv1D weights are stored [in, out]; bitsandbytes holds them [out, in]
    const modelType = (await readModelConfig(source.folder))?.config.model_type
    // llama.cpp's layout of a Hugging Face model, checked before any work (config.json, architecture)
    const spec = format === 'gguf' && source.format !== 'gguf' ? await describeSource(source) : undefined
    const jobs = new Map<string, TensorJob>()
    const kept: KeptTensor[] = []
    let quantizedParameters = 0
    let parameters = 0
    const dtypes = new Map<DType, number>()
    for (const t of source.tensors.values()) {
      parameters += shapeSize(t.shape)
      if (!select(t.name, t.shape, t.dtype)) continue
      const problem = QUANT_SCHEMES[quant.scheme].shapeProblem(ggufOrientedShape(spec, t), quant.blockSize)
      if (problem) {
        kept.push({name: t.name, reason: problem})
        continue
      }
      jobs.set(t.name, {quant, ...(transposesConv1D(quant.scheme) && isConv1DWeight(modelType, t.name) ? {transposeBeforeEncode: true} : {})})
      quantizedParameters += shapeSize(t.shape)
      dtypes.set(t.dtype, (dtypes.get(t.dtype) ?? 0) + 1)
    }
    const mainDtype = [...dtypes.entries()].sort((a, b) => b[1] - a[1])[0]?.[0] ?? 'F16'
    const {metadata, editConfig} = schemeOutput(quant, {mainDtype, tensors: [...source.tensors.values()], quantized: new Set(jobs.keys())})
    const result: WriteModelResult = await writeModelOutput({
      source,
      out: options.out,
      format,
      jobs,
      force: options.force,
      metadata,
      editConfig,
      onProgress: options.onProgress,
      threads: options.threads,
    })
    return {
      out: options.out,
      format,
      scheme: quant.scheme,
      block_size: quant.blockSize,
      double_quant: quant.doubleQuant,
      files: result.files,
      quantized: jobs.size,
      quantized_parameters: quantizedParameters,
      parameters,
      kept,
      bytes_in: source.bytes,
      bytes_out: result.bytes,
    }
  } finally {
    await source.close()
  }
}

/** The schemes written into GGUF, for messages. */
function schemesStoredAsGguf(): string {
  return QUANT_SCHEME_NAMES.filter((n) => QUANT_SCHEMES[n].format === 'gguf').join(', ')
}
