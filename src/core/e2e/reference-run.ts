/**
 * The reference every strategy's tokens are checked against: each request
 * decoded greedily on the base with its own adapter (`RowFactorDeltas`:
 * the adapter's factors fed per row, plain LoRA), in static batches (the
 * rows of a batch start together, none joins later; no scheduler, no
 * stacks, no strategy of the table). Besides each generated token it keeps
 * the runner-up and the margin between them, and the next contenders (the
 * best `TIE_CANDIDATES` in all) with their gaps to the best, so that a
 * strategy that picks another of the top tokens where their logits are within
 * its arithmetic's noise is told apart from a wrong one (`checkTokens`).
 */
import type {DecoderModel} from '../runtime/decoder-model.js'
import type {AdapterFactors} from '../runtime/adapter-factors.js'
import type {E2eRequest} from './requests.js'
import type {RowFactorDeltas} from './row-factor-deltas.js'

/** The reference's tokens of one request, with what the check needs at each position. */
export interface ReferenceTokens {
  readonly tokens: number[]
  /** The second-best token at each position. */
  readonly runnerUp: number[]
  /** Logit of the best minus that of the runner-up at each position. */
  readonly margin: number[]
  /** Largest |logit| at each position (the margin's scale). */
  readonly scale: number[]
  /** The tokens ranked 2nd … `TIE_CANDIDATES`-th at each position (the runner-up first), and their gaps to the best logit. */
  readonly contenders?: ReadonlyArray<{readonly tokens: readonly number[]; readonly gaps: readonly number[]}>
}

/** Tokens at the top of each reference row kept for the near-tie check: the best and three contenders. */
export const TIE_CANDIDATES = 4

/** One row of the reference: a request and how to read the factors of its adapter (null: the base alone), read when its batch runs. */
export interface ReferenceRow {
  readonly request: E2eRequest
  /** Rows with the same key share one read within a batch. */
  readonly key: string
  factors(): Promise<AdapterFactors | null>
}

/**
 * The `k` largest entries of a row of logits, best first (ties to the lower
 * index), and the largest |logit|.
 */
export function topCandidates(row: Float32Array, k: number): {tokens: number[]; logits: number[]; scale: number} {
  const tokens: number[] = []
  const logits: number[] = []
  let scale = 0
  for (let i = 0; i < row.length; i++) {
    const v = row[i]!
    scale = Math.max(scale, Math.abs(v))
    if (tokens.length === k && v <= logits[k - 1]!) continue
    let at = Math.min(tokens.length, k - 1)
    while (at > 0 && v > logits[at - 1]!) at--
    tokens.splice(at, 0, i)
    logits.splice(at, 0, v)
    if (tokens.length > k) {
      tokens.pop()
      logits.pop()
    }
  }
  return {tokens, logits, scale}
}

/**
 * Decode every row greedily, `maxBatch` rows at a time: a batch starts
 * together, and rows leave it as they reach their `maxTokens`.
 * @param model a model built with `deltas` as its delta provider
 * @returns per row, in order
 */
export async function runReference(model: DecoderModel, deltas: RowFactorDeltas, rows: readonly ReferenceRow[], maxBatch: number, onProgress?: (done: number) => void): Promise<ReferenceTokens[]> {
  const out: ReferenceTokens[] = []
  for (let start = 0; start < rows.length; start += maxBatch) {
    const chunk = rows.slice(start, start + maxBatch)
    const loaded = new Map<string, AdapterFactors | null>()
    for (const r of chunk) if (!loaded.has(r.key)) loaded.set(r.key, await r.factors())
    const factors = chunk.map((r) => loaded.get(r.key)!)
    const results: Array<ReferenceTokens & {contenders: Array<{tokens: number[]; gaps: number[]}>}> = chunk.map(() => ({tokens: [], runnerUp: [], margin: [], scale: [], contenders: []}))
    let active = chunk.map((_, i) => i)
    await deltas.setRows(factors)
    let step = await model.forward({tokens: chunk.map((r) => r.request.prompt)})
    for (;;) {
      step.logits.forEach((row, k) => {
        const t = topCandidates(row, TIE_CANDIDATES)
        const r = results[active[k]!]!
        r.tokens.push(t.tokens[0]!)
        r.runnerUp.push(t.tokens[1] ?? t.tokens[0]!)
        r.margin.push(t.logits[0]! - (t.logits[1] ?? t.logits[0]!))
        r.scale.push(t.scale)
        r.contenders.push({tokens: t.tokens.slice(1), gaps: t.logits.slice(1).map((v) => t.logits[0]! - v)})
      })
      const keep = active.map((i, k) => (results[i]!.tokens.length < chunk[i]!.request.maxTokens ? k : -1)).filter((k) => k >= 0)
      if (keep.length === 0) break
      let cache = step.cache
      if (keep.length < active.length) {
        active = keep.map((k) => active[k]!)
        cache = cache.take(keep)
        await deltas.setRows(active.map((i) => factors[i]!))
      }
      step = await model.forward({tokens: active.map((i) => [results[i]!.tokens.at(-1)!]), cache})
    }
    out.push(...results)
    onProgress?.(start + chunk.length)
  }
  return out
}
