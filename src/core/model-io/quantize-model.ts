/**
 * `lora quantize`: re-encode a base model's linear weights with a 4-bit
 * scheme, streaming tensor by tensor. Tensors the scheme cannot hold (a row
 * that is not a whole number of blocks, a 1-D tensor) stay in their float
 * dtype and are reported, as llama.cpp's converter falls back to F16.
 */
import type {DType} from '../dtype.js'
import {UsageError} from '../errors.js'
import type {ProgressCallback} from '../progress.js'
import {shapeSize} from '../shape.js'
import {int4Module, torchDtype} from '../quant/layout.js'
import {ModelReader} from './model-reader.js'
import {QUANT_SCHEMES, QuantOptions, QuantSchemeName} from '../quant/schemes.js'
import {SelectionOptions, quantizeSelector} from '../quant/selection.js'
import {TensorJob, WriteModelResult, writeModel} from './write-model.js'

export interface QuantizeModelOptions extends SelectionOptions {
  /** Model file, index or folder. */
  readonly model: string
  readonly out: string
  readonly scheme: QuantSchemeName
  /** Default: the scheme's (nf4 64, q4_0 32, int4 128). */
  readonly blockSize?: number
  readonly doubleQuant?: boolean
  /** Default: the scheme's own (q4_0 → gguf, nf4/int4 → safetensors). */
  readonly format?: 'safetensors' | 'gguf'
  readonly force?: boolean
  readonly onProgress?: ProgressCallback
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
 * Check scheme, block size and format against each other.
 * @throws UsageError naming the flag
 */
export function resolveQuantOptions(scheme: QuantSchemeName, blockSize: number | undefined, doubleQuant: boolean | undefined, format?: 'safetensors' | 'gguf'): {quant: QuantOptions; format: 'safetensors' | 'gguf'} {
  const info = QUANT_SCHEMES[scheme]
  const size = blockSize ?? info.defaultBlockSize
  const problem = info.blockSizeProblem(size)
  if (problem) throw new UsageError('BAD_FLAG', `${info.blockSizeFlag}: ${problem}`)
  if (doubleQuant && scheme !== 'nf4') throw new UsageError('BAD_FLAG', `--double-quant applies to nf4 only (got --scheme ${scheme})`)
  const fmt = format ?? info.format
  if (fmt !== info.format) throw new UsageError('BAD_FLAG', `--format ${fmt}: ${scheme} is written as ${info.format}${scheme === 'q4_0' ? ' (GGUF is the format llama.cpp reads)' : ''}`)
  return {quant: {scheme, blockSize: size, doubleQuant: doubleQuant ?? false}, format: fmt}
}

/** transformers' `quantization_config` for a bitsandbytes nf4 checkpoint. */
export function bnbQuantizationConfig(quant: QuantOptions, computeDtype: DType, skipModules: readonly string[]): Record<string, unknown> {
  return {
    _load_in_4bit: true,
    _load_in_8bit: false,
    bnb_4bit_compute_dtype: torchDtype(computeDtype),
    bnb_4bit_quant_storage: 'uint8',
    bnb_4bit_quant_type: 'nf4',
    bnb_4bit_use_double_quant: quant.doubleQuant,
    llm_int8_enable_fp32_cpu_offload: false,
    llm_int8_has_fp16_weight: false,
    llm_int8_skip_modules: [...skipModules],
    llm_int8_threshold: 6.0,
    load_in_4bit: true,
    load_in_8bit: false,
    quant_method: 'bitsandbytes',
  }
}

/** 2-D float `.weight` modules left unquantized, for `llm_int8_skip_modules` (with lm_head, as transformers skips it by default). */
export function skippedModules(tensors: Iterable<{name: string; shape: readonly number[]; dtype: DType}>, quantized: ReadonlySet<string>): string[] {
  const out = new Set<string>(['lm_head'])
  for (const t of tensors) if (t.shape.length === 2 && t.name.endsWith('.weight') && !quantized.has(t.name) && ['F16', 'BF16', 'F32'].includes(t.dtype)) out.add(int4Module(t.name))
  return [...out]
}

/**
 * Quantize a model.
 * @throws UsageError for impossible flag combinations or an existing output; InputError for unreadable models,
 *   an already-quantized model, or values the scheme cannot encode (NaN, ±Infinity, f16 scale overflow)
 */
export async function quantizeModel(options: QuantizeModelOptions): Promise<QuantizeModelResult> {
  const {quant, format} = resolveQuantOptions(options.scheme, options.blockSize, options.doubleQuant, options.format)
  const source = await ModelReader.open(options.model)
  try {
    const already = [...source.tensors.values()].find((t) => t.encoding !== 'plain')
    if (already) throw new UsageError('ALREADY_QUANTIZED', `quantize ${options.model}: tensor "${already.name}" is already ${already.encoding}; merge into it with \`lora merge --from-quantized\` instead`)
    const select = quantizeSelector(options)
    const jobs = new Map<string, TensorJob>()
    const kept: KeptTensor[] = []
    let quantizedParameters = 0
    let parameters = 0
    const dtypes = new Map<DType, number>()
    for (const t of source.tensors.values()) {
      parameters += shapeSize(t.shape)
      if (!select(t.name, t.shape, t.dtype)) continue
      const problem = QUANT_SCHEMES[quant.scheme].shapeProblem(t.shape, quant.blockSize)
      if (problem) {
        kept.push({name: t.name, reason: problem})
        continue
      }
      jobs.set(t.name, {quant})
      quantizedParameters += shapeSize(t.shape)
      dtypes.set(t.dtype, (dtypes.get(t.dtype) ?? 0) + 1)
    }
    const mainDtype = [...dtypes.entries()].sort((a, b) => b[1] - a[1])[0]?.[0] ?? 'F16'
    const result: WriteModelResult = await writeModel({
      source,
      out: options.out,
      format,
      jobs,
      force: options.force,
      metadata: quant.scheme === 'int4' ? {'lora.quantization': 'int4', 'lora.group_size': String(quant.blockSize), 'lora.dtype': mainDtype} : undefined,
      editConfig:
        quant.scheme === 'nf4'
          ? (config) => {
              config.quantization_config = bnbQuantizationConfig(quant, mainDtype, skippedModules(source.tensors.values(), new Set(jobs.keys())))
            }
          : undefined,
      onProgress: options.onProgress,
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
