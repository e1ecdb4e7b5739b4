/**
 * `lora merge`: `W' = W + Σ_k w_k · s_k · B_k A_k` (transposed where the base
 * stores [in, out]) for every module of every adapter, computed in float32
 * (onnxruntime Gemm: `P·Q + W` on row chunks), written in `--dtype` (default:
 * each tensor's own) or quantized (`--quantize`); with `--from-quantized`
 * the base is one of our 4-bit outputs, decoded, merged and re-encoded.
 * The quality report is measured on the files as written, before they are
 * renamed into place.
 */
import {DTYPES} from '../dtype.js'
import type {DType, FloatOutputDType} from '../dtype.js'
import {GateError, UsageError, describeSystemError} from '../errors.js'
import {LoraAdapter} from '../formats/peft-adapter.js'
import {AtomicFile} from '../io/atomic-output.js'
import {MODEL_OUTPUT_KIND, checkOutputs} from '../io/output-target.js'
import {assertMemoryFits} from '../io/resources.js'
import type {ProgressCallback} from '../progress.js'
import {ModelReader} from '../model-io/model-reader.js'
import {QUANT_SCHEMES, QUANT_SCHEME_NAMES, QuantOptions, QuantSchemeName, resolveQuantOptions, schemeOutput, transposesConv1D} from '../quant/schemes.js'
import {SelectionOptions, quantizeSelector} from '../quant/selection.js'
import type {TensorJob} from '../model-io/write-model.js'
import {writeModelOutput} from '../model-io/write-output.js'
import {ggufBaseResolver} from './gguf-base.js'
import {isConv1DWeight} from '../models/conv1d.js'
import {readModelConfig} from '../models/model-config.js'
import {TransposedBackView} from './written-view.js'
import {GgufAsHfReader} from '../model-io/gguf-hf-view.js'
import {describeSource, ggufOrientedShape} from '../model-io/gguf-model-plan.js'
import {DeltaFactors, deltaRows, deltaRowsHalf, loadDelta, toFloat32Factors} from './delta.js'
import {MergeTarget, planMerge} from './plan.js'
import {ProbeOptions, QualityReport, measureQuality, probeMemory} from './quality.js'

export interface MergeAdapterInput {
  readonly path: string
  /** w_k (default 1). */
  readonly weight?: number
}

export interface MergeOptions extends SelectionOptions {
  readonly base: string
  readonly adapters: readonly MergeAdapterInput[]
  readonly out: string
  /** Float dtype of written float tensors (default: each tensor's own). */
  readonly dtype?: FloatOutputDType
  readonly quantize?: QuantSchemeName
  readonly blockSize?: number
  readonly doubleQuant?: boolean
  readonly fromQuantized?: boolean
  /** Probe settings for the quality report, or false to skip it. */
  readonly quality?: ProbeOptions | false
  /** Fail (GateError) when any merged tensor keeps less than 1 − maxLoss of its adapter. */
  readonly maxLoss?: number
  /** Also write the quality report as JSON here. */
  readonly reportPath?: string
  readonly force?: boolean
  readonly onProgress?: ProgressCallback
  readonly onWarning?: (message: string) => void
  /** Threads that encode with `quantize` (default 1, the calling thread; `lora merge` defaults to every core). */
  readonly threads?: number
}

export interface MergedTensorInfo {
  name: string
  shape: readonly number[]
  adapters: number
  rank: number
  orientation: '[out, in]' | '[in, out]'
  written: string
}

export interface MergeGate {
  max_loss: number
  passed: boolean
  /** Tensors whose adapter_retained fell below 1 − max_loss. */
  failing: Array<{name: string; adapter_retained: number | null}>
}

export interface MergeResult {
  out: string
  format: 'safetensors' | 'gguf'
  files: string[]
  dtype: string
  quantize: QuantSchemeName | null
  block_size: number | null
  from_quantized: boolean
  adapters: Array<{name: string; path: string; weight: number; modules: number}>
  merged: MergedTensorInfo[]
  warnings: string[]
  /** Tensors the scheme would quantize but cannot hold (left in float), with the reason. */
  kept: Array<{name: string; reason: string}>
  bytes: number
  report: QualityReport | null
  gate: MergeGate | null
}

function validate(options: MergeOptions): void {
  if (options.adapters.length === 0) throw new UsageError('BAD_FLAG', '--adapter is required (at least one adapter folder)')
  for (const a of options.adapters) {
    if (a.weight !== undefined && !Number.isFinite(a.weight)) throw new UsageError('BAD_FLAG', `--weight must be a finite number (got ${a.weight})`)
  }
  if (options.maxLoss !== undefined && !(options.maxLoss >= 0)) throw new UsageError('BAD_FLAG', `--max-loss must be a number of at least 0 (got ${options.maxLoss})`)
  if (options.quality === false && (options.maxLoss !== undefined || options.reportPath)) throw new UsageError('BAD_FLAG', '--max-loss and --report need the quality report (drop --no-quality)')
  if (options.quality && !options.quality.file && !(Number.isSafeInteger(options.quality.rows) && options.quality.rows > 0)) {
    throw new UsageError('BAD_FLAG', `--probe must be a positive integer (got ${options.quality.rows})`)
  }
}

/** The scheme the base is stored in (from-quantized), with its block size. */
function baseScheme(base: ModelReader): QuantOptions | undefined {
  const q = [...base.tensors.values()].find((t) => t.encoding !== 'plain')
  return q ? {scheme: q.encoding as QuantSchemeName, blockSize: q.blockSize!, doubleQuant: q.doubleQuant ?? false} : undefined
}

/**
 * Merge adapters into a base model.
 * @throws UsageError for contradicting flags; InputError for unreadable inputs, modules without a base tensor,
 *   shapes that fit in neither orientation, values a scheme cannot encode (no output is left behind);
 *   GateError after everything is written when `maxLoss` is breached
 */
export async function mergeModel(options: MergeOptions): Promise<MergeResult> {
  validate(options)
  const inputs = [options.base, ...options.adapters.map((a) => a.path), options.quality ? options.quality.file : undefined]
  const outputs = (format: 'safetensors' | 'gguf') => [
    {path: options.out, kind: format === 'gguf' ? ('file' as const) : ('folder' as const), folderKind: MODEL_OUTPUT_KIND, flag: '--out'},
    ...(options.reportPath ? [{path: options.reportPath, kind: 'file' as const, flag: '--report'}] : []),
  ]
  // the paths first (nothing is opened yet), the output's kind again once the base says which format it gets
  await checkOutputs(outputs('safetensors'), {inputs, pathsOnly: true})
  const base = await ModelReader.open(options.base)
  const adapters: LoraAdapter[] = []
  try {
    for (const a of options.adapters) adapters.push(await LoraAdapter.load(a.path))
    const stored = baseScheme(base)
    // an 8-bit GGUF base (llama.cpp's Q8_0) merges like a float one; --from-quantized is for 4-bit bases
    const fromQuantized = options.fromQuantized === true || (stored !== undefined && base.format === 'gguf' && QUANT_SCHEMES[stored.scheme].bits >= 8)
    if (stored && !fromQuantized) {
      throw new UsageError('BASE_IS_QUANTIZED', `merge ${options.base}: the base holds ${stored.scheme} weights; pass --from-quantized to decode, merge and re-quantize them`)
    }
    if (options.fromQuantized && !stored) {
      throw new UsageError('BASE_NOT_QUANTIZED', `merge ${options.base}: --from-quantized was given but the base holds no quantized weights (${QUANT_SCHEME_NAMES.join(', ')})`)
    }
    const schemeName = options.quantize ?? stored?.scheme
    const resolved = schemeName
      ? resolveQuantOptions(schemeName, options.blockSize ?? (schemeName === stored?.scheme ? stored.blockSize : undefined), options.doubleQuant ?? (schemeName === stored?.scheme ? stored.doubleQuant : undefined))
      : undefined
    const quant = resolved?.quant
    if (base.format === 'gguf' && quant && QUANT_SCHEMES[quant.scheme].format !== 'gguf') {
      throw new UsageError('BAD_FLAG', `--quantize ${quant.scheme}: a GGUF base is written as GGUF (q4_0, or float without --quantize); ${quant.scheme} needs the Hugging Face folder of the base`)
    }
    const ggufOut = /\.gguf$/i.test(options.out)
    if (ggufOut && quant && QUANT_SCHEMES[quant.scheme].format !== 'gguf') throw new UsageError('BAD_FLAG', `--out ${options.out}: ${quant.scheme} is written as a safetensors folder, not GGUF (q4_0 or a float GGUF are)`)
    const format = resolved?.format ?? (base.format === 'gguf' || ggufOut ? 'gguf' : 'safetensors')
    // a float GGUF is F16 unless --dtype says otherwise, as llama.cpp's converter writes it
    const floatDtype: FloatOutputDType | undefined = options.dtype ?? (format === 'gguf' && !quant ? 'F16' : undefined)
    // llama.cpp's layout of a Hugging Face base, checked before any work (config.json, architecture)
    const spec = format === 'gguf' && base.format !== 'gguf' ? await describeSource(base) : undefined
    await checkOutputs(outputs(format), {force: options.force, inputs})
    const weights = options.adapters.map((a) => a.weight ?? 1)
    const plan = planMerge(base, adapters, weights, base.format === 'gguf' ? ggufBaseResolver(base.ggufFile!) : undefined)

    const select = quantizeSelector(options)
    // GPT-2's Conv1D weights (stored [in, out]) are quantized [out, in] for loaders that hold them so (bitsandbytes)
    const modelType = quant && transposesConv1D(quant.scheme) && base.format !== 'gguf' ? (await readModelConfig(base.folder))?.config.model_type : undefined
    const transposeForNf4 = (t: {name: string; encoding: string}) => (modelType !== undefined && t.encoding === 'plain' && isConv1DWeight(modelType, t.name) ? {transposeBeforeEncode: true} : {})
    const transposedNames = new Set<string>()
    const f32Factors = new Map<string, DeltaFactors<Float32Array>>()
    const jobs = new Map<string, TensorJob>()
    const quantOf = new Map<string, QuantOptions>()
    const kept: Array<{name: string; reason: string}> = []
    for (const t of base.tensors.values()) {
      const target = plan.targets.get(t.name)
      const selected = quant !== undefined && select(t.name, t.shape, t.dtype)
      const problem = selected ? QUANT_SCHEMES[quant.scheme].shapeProblem(ggufOrientedShape(spec, t), quant.blockSize) : undefined
      if (problem) kept.push({name: t.name, reason: problem})
      const encodable = selected && problem === undefined
      const sameAsStored = t.encoding !== 'plain' && quant !== undefined && t.encoding === quant.scheme && t.blockSize === quant.blockSize && (t.doubleQuant ?? false) === quant.doubleQuant
      if (!target) {
        if (sameAsStored) continue // untouched 4-bit tensor: copied as stored
        if (t.encoding === 'plain' && !encodable && floatDtype === undefined) continue
        const dtype: DType | undefined = t.encoding === 'plain' && !['F16', 'BF16', 'F32'].includes(t.dtype) ? undefined : (floatDtype ?? t.dtype)
        jobs.set(t.name, encodable ? {quant, dtype, ...transposeForNf4(t)} : {dtype})
        if (encodable) quantOf.set(t.name, quant!)
        continue
      }
      const factors = async () => {
        let f = f32Factors.get(t.name)
        if (!f) {
          f32Factors.clear()
          f = toFloat32Factors(await loadDelta(target, adapters))
          f32Factors.set(t.name, f)
        }
        return f
      }
      const transform = async (start: number, count: number, rows: Float32Array) => deltaRows(await factors(), start, count, rows)
      const transformHalf = async (start: number, count: number, rows: Uint16Array) => deltaRowsHalf(await factors(), start, count, rows)
      jobs.set(t.name, encodable ? {quant, dtype: floatDtype ?? t.dtype, transform, ...transposeForNf4(t)} : {dtype: floatDtype ?? t.dtype, transform, transformHalf})
      if (encodable) quantOf.set(t.name, quant!)
      if (encodable && transposeForNf4(t).transposeBeforeEncode) transposedNames.add(t.name)
    }
    const warnings = [...adapters.flatMap((a) => a.warnings.map((m) => `adapter ${a.name}: ${m}`)), ...plan.warnings]
    if (kept.length > 0) warnings.push(`${kept.length} tensor${kept.length === 1 ? '' : 's'} stay in float, ${quant!.scheme} cannot hold them (${kept[0]!.name}: ${kept[0]!.reason}${kept.length > 1 ? '; …' : ''})`)
    for (const w of warnings) options.onWarning?.(w)
    const targets = [...plan.targets.values()]
    if (options.quality && !options.quality.file) {
      const probe = probeMemory(targets, options.quality.rows)
      assertMemoryFits([{bytes: probe.bytes, largestArray: probe.largestArray, what: `--probe ${options.quality.rows} rows`}], `merge ${options.out}`)
    }
    let report: QualityReport | null = null
    const quantized = new Set(quantOf.keys())
    const mainDtype: DType = floatDtype ?? (targets[0] ? base.get(targets[0].name).dtype : 'F16')
    const output = quant ? schemeOutput(quant, {mainDtype, tensors: [...base.tensors.values()], quantized}) : {}
    const written = await writeModelOutput({
      source: base,
      out: options.out,
      format,
      jobs,
      force: options.force,
      threads: options.threads,
      metadata: output.metadata,
      editConfig: (config) => {
        // a base quantized with bitsandbytes and merged into another scheme must not keep its quantization_config
        delete config.quantization_config
        if (output.editConfig) output.editConfig(config)
        else if (!quant && options.dtype) config.torch_dtype = DTYPES[options.dtype].torch
      },
      inspect:
        options.quality === false
          ? undefined
          : async (path) => {
              // the written file, read back under the base's names and layout
              const reader = spec ? await GgufAsHfReader.open(path, spec) : await ModelReader.open(path)
              const readBack = reader instanceof ModelReader && transposedNames.size > 0 ? new TransposedBackView(reader, transposedNames) : reader
              try {
                report = await measureQuality({
                  base,
                  output: readBack,
                  targets,
                  deltas: (target) => loadDelta(target, adapters),
                  quantOf: (name) => quantOf.get(name),
                  scheme: quant,
                  fromQuantized,
                  probes: options.quality || {rows: 256, seed: 0},
                  onProgress: options.onProgress,
                })
              } finally {
                await reader.close()
              }
            },
      onProgress: options.onProgress,
    })
    const finalReport = report as QualityReport | null
    if (options.reportPath && finalReport) await writeJsonAtomic(options.reportPath, finalReport, options.force)
    const gate = options.maxLoss !== undefined && finalReport ? evaluateGate(finalReport, options.maxLoss) : null
    const writtenByName = new Map(written.tensors.map((t) => [t.name, t]))
    return {
      out: options.out,
      format,
      files: written.files,
      dtype: floatDtype ?? 'as base',
      quantize: quant?.scheme ?? null,
      block_size: quant?.blockSize ?? null,
      from_quantized: fromQuantized,
      adapters: adapters.map((a, k) => ({name: a.name, path: options.adapters[k]!.path, weight: weights[k]!, modules: a.modules.size})),
      merged: targets.map((t: MergeTarget) => ({
        name: t.name,
        shape: t.shape,
        adapters: new Set(t.terms.map((x) => x.adapter)).size,
        rank: t.terms.reduce((s, x) => s + x.module.r, 0),
        orientation: t.transposed ? '[in, out]' : '[out, in]',
        written: writtenByName.get(t.name)?.written === 'float' ? writtenByName.get(t.name)!.dtype : (writtenByName.get(t.name)?.written ?? 'copy'),
      })),
      warnings,
      kept,
      bytes: written.bytes,
      report: finalReport,
      gate,
    }
  } finally {
    for (const a of adapters) await a.close()
    await base.close()
  }
}

/**
 * Which tensors breach `--max-loss` on the written scenario. A figure that is
 * not a finite number (NaN from overflowing values) fails the gate; null
 * (the adapter changes nothing on the probes: nothing to lose) passes it.
 */
export function evaluateGate(report: QualityReport, maxLoss: number): MergeGate {
  const failing = report.tensors
    .map((t) => ({name: t.name, adapter_retained: t[report.written]?.adapter_retained ?? null}))
    .filter((t) => t.adapter_retained !== null && !(Number.isFinite(t.adapter_retained) && t.adapter_retained >= 1 - maxLoss))
  return {max_loss: maxLoss, passed: failing.length === 0, failing}
}

/** The GateError for a failed gate (one line: how many tensors, the worst one). */
export function gateError(gate: MergeGate): GateError {
  const worst = [...gate.failing].sort((a, b) => (a.adapter_retained ?? 0) - (b.adapter_retained ?? 0))[0]!
  return new GateError(
    'MAX_LOSS_EXCEEDED',
    `--max-loss ${gate.max_loss}: ${gate.failing.length} merged tensor${gate.failing.length === 1 ? '' : 's'} keep less than ${1 - gate.max_loss} of the adapter (worst: ${worst.name}, adapter_retained ${worst.adapter_retained?.toFixed(4)})`,
  )
}

async function writeJsonAtomic(path: string, value: unknown, force?: boolean): Promise<void> {
  const file = await AtomicFile.create(path, {force})
  try {
    await file.handle.writeFile(`${JSON.stringify(value, null, 2)}\n`)
    await file.commit()
  } catch (error) {
    await file.abort()
    throw describeSystemError(error, 'write', path)
  }
}

