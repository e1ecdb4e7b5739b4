/**
 * `lora eval`: quality loss measured on the model's output over real text,
 * with llama.cpp's `llama-perplexity --kl-divergence` metric set, for each
 * variant of a base + adapters as it would be served.
 *
 * The reference is the base with the adapters applied unmerged, in float32
 * (the runtime's graph). Each variant (`variants/`) is built in memory from
 * the project's own encoders, or read back from a file, run over the same
 * sequences (`text-protocol.ts`) and compared position by position with the
 * reference (`divergence.ts`). `adapter_retained_output = 1 − KL(ref ‖
 * variant) / KL(ref ‖ control)`, the control being the same variant built
 * without the adapters (evaluated once per distinct model).
 */
import {openRegularFile} from '../io/regular-file.js'
import {InputError, UsageError, withFileContext} from '../errors.js'
import type {ProgressCallback} from '../progress.js'
import {QUANT_SCHEMES, QuantOptions, QuantSchemeName, isQuantSchemeName} from '../quant/schemes.js'
import {DecoderModel, assertDecoderTensors} from '../runtime/decoder-model.js'
import type {DecoderWeights} from '../runtime/decoder-weights.js'
import {AdapterRef, openDecoderWeights, readAdapters} from '../runtime/load-decoder.js'
import {loraDeltas} from '../runtime/lora-deltas.js'
import {loadTokenizer} from '../runtime/tokenizer.js'
import type {DivergenceFigures, PerplexityAccumulator} from './divergence.js'
import type {NextTokenEngine} from './external-engine.js'
import {KldGate, kldGate} from './kld-gate.js'
import {ReferenceRows} from './reference-rows.js'
import {batchTokens, scoreEngineSession, scoreReference, scoreVariant} from './score-model.js'
import {EvalText, MIN_EVAL_CONTEXT, prepareEvalText} from './text-protocol.js'
import {DEFAULT_VARIANTS, VariantRequest, parseVariant, variantKind, variantName} from './variants/registry.js'
import type {VariantContext} from './variants/variant-kind.js'

/** The context used when `ctx` is not given: the model's, at most this. */
export const DEFAULT_MAX_CONTEXT = 2048
/** An evaluation text larger than this is refused (tokenized whole, in memory). */
export const MAX_EVAL_TEXT_BYTES = 64 * 1024 * 1024

/** A model already written, evaluated as stored. */
export interface VariantFileInput {
  readonly path: string
  /** The variant it was written as (e.g. `merge-then-quantize:nf4`), which gives it a control; none by default. */
  readonly builtAs?: VariantRequest
}

/** What to evaluate. */
export interface EvalOptions {
  /** Base model: a Hugging Face folder or a GGUF file. */
  readonly base: string
  readonly adapters?: readonly AdapterRef[]
  /** The evaluation text (UTF-8). */
  readonly text: string
  /** Variants to build (default `DEFAULT_VARIANTS`; `[]` with `variantFiles` for files only). */
  readonly variants?: readonly VariantRequest[]
  readonly variantFiles?: readonly VariantFileInput[]
  /** Context in tokens (default: the model's, at most 2048). */
  readonly ctx?: number
  /** Block size of the schemes sized by `--block-size` (nf4; q4_0 and q8_0 take only 32); default each scheme's. */
  readonly blockSize?: number
  /** Group size of the schemes sized by `--group-size` (int4); default each scheme's. */
  readonly groupSize?: number
  /** Gate: fail the gated variants whose mean KL exceeds this. */
  readonly maxKld?: number
  readonly threads?: number
  /** Other engines computing the variant files they run, side by side with the runtime (`--engine llama.cpp`). */
  readonly engines?: readonly NextTokenEngine[]
  readonly onProgress?: ProgressCallback
}

/** One variant's row of the report. */
export interface VariantResult extends DivergenceFigures {
  variant: string
  kind: string
  scheme: string | null
  /** What computed the figures: `onnxruntime` (the runtime), or another engine (`llama.cpp`) for a variant file. */
  engine: string
  /** The file, for a variant read from disk. */
  path?: string
  /** 1 − KL(ref ‖ variant) / KL(ref ‖ control); null without adapters, without a control, or when the control's KL is not positive. */
  adapter_retained_output: number | null
  /** The control (the same variant built without the adapters) and its mean KL, or null. */
  control: {model: string; kld_mean: number} | null
  /** Whether `--max-kld` gates it. */
  gated: boolean
  /** Weights encoded with the scheme (quantized variants), and those the scheme cannot hold, kept in float. */
  quantized_weights: number | null
  kept_float: Array<{name: string; reason: string}>
}

/** The whole report (`lora eval --json`). */
export interface EvalResult {
  reference: {ppl: number; positions: number; tokens: number; model: string; adapters: Array<{name: string; weight: number}>}
  variants: VariantResult[]
  protocol: {
    text: string
    documents: number
    chunked_documents: number
    sequences: number
    ctx: number
    bos_token_id: number | null
    tokens: number
    positions: number
    split: string
    scoring: string
    tokenizer: string
  }
  gate: KldGate | null
}

/**
 * Read an evaluation text.
 * @throws InputError for a missing, oversized, non-UTF-8 or empty file
 */
export async function readEvalText(path: string): Promise<string> {
  const {handle, size} = await openRegularFile(path)
  let bytes: Buffer
  try {
    if (size > MAX_EVAL_TEXT_BYTES) throw new InputError('EVAL_TEXT_TOO_LARGE', `read ${path}: larger than ${MAX_EVAL_TEXT_BYTES} bytes (evaluate a sample of it)`)
    bytes = await withFileContext('read', path, () => handle.readFile())
  } finally {
    await handle.close()
  }
  let text: string
  try {
    text = new TextDecoder('utf-8', {fatal: true}).decode(bytes)
  } catch {
    throw new InputError('EVAL_TEXT_NOT_UTF8', `read ${path}: not valid UTF-8 text`)
  }
  if (text.trim() === '') throw new InputError('EVAL_TEXT_EMPTY', `read ${path}: no text to evaluate`)
  return text
}

/**
 * Block options per scheme, checked for the schemes the variants use.
 * @throws UsageError when a used scheme cannot take the given size
 */
function quantOptions(options: EvalOptions, used: readonly string[]): (scheme: QuantSchemeName) => QuantOptions {
  const sizeOf = (scheme: QuantSchemeName) => (QUANT_SCHEMES[scheme].blockSizeFlag === '--block-size' ? options.blockSize : options.groupSize)
  for (const scheme of new Set(used.filter(isQuantSchemeName))) {
    const size = sizeOf(scheme)
    const problem = size === undefined ? undefined : QUANT_SCHEMES[scheme].blockSizeProblem(size)
    if (problem) throw new UsageError('BAD_FLAG', `${QUANT_SCHEMES[scheme].blockSizeFlag} ${size}: ${problem} (drop the flag or the ${scheme} variants)`)
  }
  return (scheme) => ({scheme, blockSize: sizeOf(scheme) ?? QUANT_SCHEMES[scheme].defaultBlockSize, doubleQuant: false})
}

/** One variant to report: how to build it and its control. */
interface Job {
  request: VariantRequest
  control: VariantRequest | null
  path?: string
}

/**
 * Evaluate the variants against the reference.
 * @throws UsageError for bad options; InputError for unreadable models, adapters or text
 */
export async function evaluateVariants(options: EvalOptions): Promise<EvalResult> {
  if (options.maxKld !== undefined && !(options.maxKld >= 0)) throw new UsageError('BAD_FLAG', `--max-kld must be a number of at least 0 (got ${options.maxKld})`)
  const jobs: Job[] = (options.variants ?? DEFAULT_VARIANTS.map(parseVariant)).map((request) => ({request, control: variantKind(request.kind).controlled ? request : null}))
  for (const f of options.variantFiles ?? []) jobs.push({request: {kind: 'file', scheme: f.path}, control: f.builtAs ?? null, path: f.path})
  if (jobs.length === 0) throw new UsageError('EVAL_NO_VARIANTS', 'nothing to evaluate: give --variants or --variant-file')
  const quant = quantOptions(options, jobs.flatMap((j) => [j.request.scheme ?? '', j.control?.scheme ?? '']))
  const text = await readEvalText(options.text)
  const engines = options.engines ?? []
  for (const engine of engines) {
    const files = (options.variantFiles ?? []).map((f) => f.path)
    const runs = await Promise.all(files.map((f) => engine.accepts(f)))
    if (!runs.some(Boolean)) throw new UsageError('EVAL_ENGINE_NO_FILE', `--engine ${engine.name}: no --variant-file it runs (${files.length === 0 ? 'none given' : files.join(', ')}); it computes models already written, such as a GGUF`)
    await engine.prepare?.()
  }

  const base = await openDecoderWeights(options.base)
  const rows = new ReferenceRows()
  try {
    assertDecoderTensors(base)
    const adapters = await readAdapters(options.adapters ?? [], base)
    const withAdapters = adapters.some((a) => a.weight !== 0)
    const ctx = options.ctx ?? Math.min(base.config.maxPositions, DEFAULT_MAX_CONTEXT)
    if (!(Number.isSafeInteger(ctx) && ctx >= MIN_EVAL_CONTEXT && ctx <= base.config.maxPositions)) {
      throw new UsageError('EVAL_BAD_CONTEXT', `--ctx must be an integer from ${MIN_EVAL_CONTEXT} to the model's context ${base.config.maxPositions} (got ${ctx})`)
    }
    const tokenizer = await loadTokenizer(options.base)
    const bos = tokenizer.bosId ?? base.config.bosTokenId
    const prepared: EvalText = prepareEvalText(text, (doc) => tokenizer.encode(doc, {addSpecialTokens: false}), bos, ctx)
    if (prepared.positions === 0) throw new InputError('EVAL_TEXT_EMPTY', `read ${options.text}: no position to score (every document is a single token)`)
    const budget = batchTokens(base.config.vocab, ctx)
    const sequences = prepared.sequences
    const create = (weights: DecoderWeights, deltas?: ReturnType<typeof loraDeltas>) => DecoderModel.create({weights, deltas, maxPositions: ctx, threads: options.threads})

    const started = (stage: string) => options.onProgress?.({stage, done: 0, total: sequences.length})
    started('reference')
    const reference = await create(base, withAdapters ? loraDeltas(adapters) : undefined)
    let ppl: PerplexityAccumulator
    try {
      ppl = await scoreReference(reference, sequences, rows, {batchTokens: budget, onProgress: options.onProgress})
    } finally {
      await reference.release()
    }

    const context: VariantContext = {base, adapters, quant}
    const evaluated = new Map<string, {figures: DivergenceFigures; quantized: number | null; kept: Array<{name: string; reason: string}>}>()
    const evaluate = async (request: VariantRequest, adapted: boolean, stage: string) => {
      const kind = variantKind(request.kind)
      const key = kind.modelKey(request.scheme, adapted)
      const done = evaluated.get(key)
      if (done) return {key, ...done}
      started(stage)
      const build = await kind.build(context, request.scheme, adapted)
      try {
        const model = await create(build.weights, build.deltas)
        try {
          const figures = await scoreVariant(model, sequences, rows, {batchTokens: budget, stage, onProgress: options.onProgress})
          const entry = {figures, quantized: build.stats ? build.stats.quantized : null, kept: build.stats ? [...build.stats.kept] : []}
          evaluated.set(key, entry)
          return {key, ...entry}
        } finally {
          await model.release()
        }
      } finally {
        await build.close()
      }
    }

    const variants: VariantResult[] = []
    for (const job of jobs) {
      const name = variantName(job.request)
      const kind = variantKind(job.request.kind)
      const own = await evaluate(job.request, withAdapters, name)
      const control = withAdapters && job.control ? await evaluate(job.control, false, `${name} control`) : undefined
      const controlKl = control?.figures.kld.mean
      const retained = controlKl !== undefined && Number.isFinite(controlKl) && controlKl > 0 ? 1 - own.figures.kld.mean / controlKl : null
      variants.push({
        variant: name,
        kind: kind.name,
        scheme: job.path === undefined ? job.request.scheme : null,
        engine: 'onnxruntime',
        ...(job.path === undefined ? {} : {path: job.path}),
        ...own.figures,
        adapter_retained_output: retained,
        control: control ? {model: control.key, kld_mean: control.figures.kld.mean} : null,
        gated: kind.gated,
        quantized_weights: own.quantized,
        kept_float: own.kept,
      })
      const path = job.path
      for (const engine of path === undefined ? [] : engines) {
        if (!(await engine.accepts(path!))) continue
        const stage = `${name} (${engine.name})`
        started(stage)
        const session = await engine.open(path!, {contextSize: ctx, threads: options.threads})
        let figures: DivergenceFigures
        try {
          figures = await scoreEngineSession(session, sequences, rows, {vocab: base.config.vocab, stage, onProgress: options.onProgress})
        } finally {
          await session.close()
        }
        const kl = figures.kld.mean
        variants.push({
          variant: stage,
          kind: kind.name,
          scheme: null,
          engine: engine.name,
          path,
          ...figures,
          adapter_retained_output: controlKl !== undefined && Number.isFinite(controlKl) && controlKl > 0 ? 1 - kl / controlKl : null,
          control: control ? {model: control.key, kld_mean: controlKl!} : null,
          gated: kind.gated,
          quantized_weights: null,
          kept_float: [],
        })
      }
    }
    return {
      reference: {
        ppl: ppl.ppl,
        positions: ppl.positions,
        tokens: prepared.tokens,
        model: withAdapters ? 'base + adapters unmerged, float32' : 'base, float32',
        adapters: adapters.map((a) => ({name: a.adapter.name, weight: a.weight})),
      },
      variants,
      protocol: {
        text: options.text,
        documents: prepared.documents,
        chunked_documents: prepared.chunkedDocuments,
        sequences: sequences.length,
        ctx,
        bos_token_id: bos,
        tokens: prepared.tokens,
        positions: prepared.positions,
        split: 'documents on blank lines, each run from BOS',
        scoring: 'every position; a document longer than ctx is cut into chunks of ctx tokens (BOS first) overlapping by half, each chunk after the first scoring its second half',
        tokenizer: tokenizer.source,
      },
      gate: options.maxKld === undefined ? null : kldGate(variants, options.maxKld),
    }
  } finally {
    await rows.close()
    await base.close()
  }
}
