/**
 * `lora merge --eval FILE`: the output-level table for what a merge just
 * wrote. The written model is read back as stored (a variant file) and
 * compared with the reference (the base + the adapters unmerged, float32)
 * beside `base` (the adapters' own effect) and, for a quantized merge, the
 * two other ways of serving the adapter on a 4-bit base
 * (`quantized-base-unmerged`, `requantize`), the output-level counterparts
 * of the weight-space scenarios (a), (b), (c) of the quality report. The
 * written model's control is the variant it was written as, built without
 * the adapters; `--max-kld` gates the written model only.
 */
import {QUANT_SCHEMES, QuantSchemeName} from '../quant/schemes.js'
import {kldGate} from './kld-gate.js'
import {EvalResult, evaluateVariants} from './run-eval.js'
import type {VariantRequest} from './variants/registry.js'
import type {ProgressCallback} from '../progress.js'

/** What the merge wrote and how. */
export interface MergeEvalOptions {
  readonly base: string
  readonly adapters: ReadonlyArray<{readonly path: string; readonly weight?: number}>
  /** The merged model as written. */
  readonly out: string
  readonly text: string
  /** The scheme the merge quantized to, if any. */
  readonly quantize: QuantSchemeName | null
  readonly blockSize?: number
  /** `--dtype` of the merge (undefined: the base's). */
  readonly dtype?: 'f32' | 'f16' | 'bf16'
  /** The base was 4-bit and was decoded, merged and re-quantized. */
  readonly fromQuantized: boolean
  readonly maxKld?: number
  readonly onProgress?: ProgressCallback
}

/** The variant the merge wrote, which gives the written file its control. */
export function writtenVariant(options: Pick<MergeEvalOptions, 'quantize' | 'dtype'>): VariantRequest {
  if (options.quantize) return {kind: 'merge-then-quantize', scheme: options.quantize}
  if (options.dtype === 'f16' || options.dtype === 'bf16') return {kind: 'merged', scheme: options.dtype}
  // merged in the base's own float dtype: without the adapters it is the base as stored
  return {kind: 'base', scheme: null}
}

/**
 * Evaluate the written model (and its neighbours) on `text`.
 * @throws as `evaluateVariants` does
 */
export async function evaluateMergeOutput(options: MergeEvalOptions): Promise<EvalResult> {
  const variants: VariantRequest[] = [{kind: 'base', scheme: null}]
  if (options.quantize && !options.fromQuantized) variants.push({kind: 'quantized-base-unmerged', scheme: options.quantize}, {kind: 'requantize', scheme: options.quantize})
  const result = await evaluateVariants({
    base: options.base,
    adapters: options.adapters.map((a) => ({path: a.path, weight: a.weight})),
    text: options.text,
    variants,
    variantFiles: [{path: options.out, builtAs: writtenVariant(options)}],
    // merge's block size is the one of its scheme: pass it under that scheme's flag
    blockSize: options.quantize && QUANT_SCHEMES[options.quantize].blockSizeFlag === '--block-size' ? options.blockSize : undefined,
    groupSize: options.quantize && QUANT_SCHEMES[options.quantize].blockSizeFlag === '--group-size' ? options.blockSize : undefined,
    onProgress: options.onProgress,
  })
  const written = result.variants.filter((v) => v.path === options.out)
  return {...result, gate: options.maxKld === undefined ? null : kldGate(written, options.maxKld)}
}
