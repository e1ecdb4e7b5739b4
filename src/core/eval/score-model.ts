/**
 * One model's pass over the evaluation sequences: the reference pass stores
 * log-probabilities at every scored position (and its perplexity), a
 * variant pass compares its distributions with the stored ones. Sequences
 * run in batches of similar length (each from an empty cache, right-padded),
 * at most `batchTokens` padded tokens of logits at a time.
 */
import type {ProgressCallback} from '../progress.js'
import type {DecoderModel} from '../runtime/decoder-model.js'
import {DivergenceAccumulator, DivergenceFigures, PerplexityAccumulator, logSoftmaxInto} from './divergence.js'
import {EngineSession, MIN_ENGINE_PROBABILITY} from './external-engine.js'
import type {ReferenceRows} from './reference-rows.js'
import {EvalSequence, scoredPositions} from './text-protocol.js'

/** Float32 logits held per batch: the batch size adapts to the vocabulary (64 MiB). */
export const EVAL_BATCH_LOGITS = 1 << 24

/** Padded tokens per batch for a vocabulary: at least one context's worth. */
export function batchTokens(vocab: number, ctx: number): number {
  return Math.max(ctx, Math.floor(EVAL_BATCH_LOGITS / vocab))
}

/** Run `model` over every sequence and hand each one's logits `[length, vocab]` to `visit`. */
async function forEachLogits(
  model: DecoderModel,
  sequences: readonly EvalSequence[],
  budget: number,
  visit: (index: number, logits: Float32Array) => Promise<void>,
  progress?: {stage: string; onProgress?: ProgressCallback},
): Promise<void> {
  const order = sequences.map((_, i) => i).sort((a, b) => sequences[b]!.tokens.length - sequences[a]!.tokens.length)
  let done = 0
  for (let i = 0; i < order.length; ) {
    const take = Math.max(1, Math.floor(budget / sequences[order[i]!]!.tokens.length))
    const batch = order.slice(i, i + take)
    const out = await model.forward({tokens: batch.map((j) => sequences[j]!.tokens), logits: 'all'})
    for (let k = 0; k < batch.length; k++) await visit(batch[k]!, out.logits[k]!)
    i += batch.length
    done += batch.length
    progress?.onProgress?.({stage: progress.stage, done, total: sequences.length})
  }
}

/**
 * The reference pass: log-probabilities (float32) of every scored position
 * into `rows`, and the reference's perplexity (float64).
 */
export async function scoreReference(
  model: DecoderModel,
  sequences: readonly EvalSequence[],
  rows: ReferenceRows,
  options: {batchTokens: number; onProgress?: ProgressCallback},
): Promise<PerplexityAccumulator> {
  const V = model.config.vocab
  const ppl = new PerplexityAccumulator()
  const lp = new Float64Array(V)
  await forEachLogits(
    model,
    sequences,
    options.batchTokens,
    async (index, logits) => {
      const s = sequences[index]!
      const stored = new Float32Array(scoredPositions(s) * V)
      for (let p = s.scoreFrom, k = 0; p < s.tokens.length - 1; p++, k++) {
        logSoftmaxInto(logits, p * V, V, lp)
        ppl.add(lp, s.tokens[p + 1]!)
        stored.set(lp, k * V)
      }
      await rows.put(index, stored)
    },
    {stage: 'reference', onProgress: options.onProgress},
  )
  return ppl
}

/** A variant pass: its figures against the stored reference rows. */
export async function scoreVariant(
  model: DecoderModel,
  sequences: readonly EvalSequence[],
  rows: ReferenceRows,
  options: {batchTokens: number; stage: string; onProgress?: ProgressCallback},
): Promise<DivergenceFigures> {
  const V = model.config.vocab
  const acc = new DivergenceAccumulator(
    sequences.reduce((n, s) => n + scoredPositions(s), 0),
    V,
  )
  await forEachLogits(
    model,
    sequences,
    options.batchTokens,
    async (index, logits) => {
      const s = sequences[index]!
      const ref = await rows.get(index)
      for (let p = s.scoreFrom, k = 0; p < s.tokens.length - 1; p++, k++) acc.add(ref.subarray(k * V, (k + 1) * V), logits, p * V, s.tokens[p + 1]!)
    },
    {stage: options.stage, onProgress: options.onProgress},
  )
  return acc.figures()
}

/**
 * A variant pass through another engine: its probabilities at every scored
 * position (floored at MIN_ENGINE_PROBABILITY, their logarithm taken as
 * logits) against the stored reference rows, one sequence at a time.
 */
export async function scoreEngineSession(
  session: EngineSession,
  sequences: readonly EvalSequence[],
  rows: ReferenceRows,
  options: {vocab: number; stage: string; onProgress?: ProgressCallback},
): Promise<DivergenceFigures> {
  const V = options.vocab
  const acc = new DivergenceAccumulator(
    sequences.reduce((n, s) => n + scoredPositions(s), 0),
    V,
  )
  const logits = new Float64Array(V)
  for (let i = 0; i < sequences.length; i++) {
    const s = sequences[i]!
    const probabilities = await session.nextTokenProbabilities(s.tokens, V)
    const ref = await rows.get(i)
    for (let p = s.scoreFrom, k = 0; p < s.tokens.length - 1; p++, k++) {
      const row = probabilities[p]!
      for (let v = 0; v < V; v++) logits[v] = Math.log(Math.max(row[v]!, MIN_ENGINE_PROBABILITY))
      acc.add(ref.subarray(k * V, (k + 1) * V), logits, 0, s.tokens[p + 1]!)
    }
    options.onProgress?.({stage: options.stage, done: i + 1, total: sequences.length})
  }
  return acc.figures()
}
