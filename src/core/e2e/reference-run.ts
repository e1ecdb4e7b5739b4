/**
 * The reference every strategy's tokens are checked against: each request
 * decoded greedily on the base with its own adapter (`RowFactorDeltas`:
 * the adapter's factors fed per row, plain LoRA), in static batches (the
 * rows of a batch start together, none joins later; no scheduler, no
 * stacks, no strategy of the table). Besides each generated token it keeps
 * the runner-up and the margin between them, so that a strategy that picks
 * the runner-up where the two logits are within float32 noise is told apart
 * from a wrong one (`checkTokens`).
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
}

/** One row of the reference: a request and how to read the factors of its adapter (null: the base alone), read when its batch runs. */
export interface ReferenceRow {
  readonly request: E2eRequest
  /** Rows with the same key share one read within a batch. */
  readonly key: string
  factors(): Promise<AdapterFactors | null>
}

/** The best and second-best entries of a row of logits. */
export function topTwo(row: Float32Array): {best: number; second: number; margin: number; scale: number} {
  let best = 0
  let second = row.length > 1 ? 1 : 0
  if (row.length > 1 && row[1]! > row[0]!) [best, second] = [1, 0]
  let scale = Math.max(Math.abs(row[0]!), Math.abs(row[row.length > 1 ? 1 : 0]!))
  for (let i = 2; i < row.length; i++) {
    const v = row[i]!
    scale = Math.max(scale, Math.abs(v))
    if (v > row[best]!) {
      second = best
      best = i
    } else if (v > row[second]!) second = i
  }
  return {best, second, margin: row[best]! - row[second]!, scale}
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
    const results: ReferenceTokens[] = chunk.map(() => ({tokens: [], runnerUp: [], margin: [], scale: []}))
    let active = chunk.map((_, i) => i)
    await deltas.setRows(factors)
    let step = await model.forward({tokens: chunk.map((r) => r.request.prompt)})
    for (;;) {
      step.logits.forEach((row, k) => {
        const t = topTwo(row)
        const r = results[active[k]!]!
        r.tokens.push(t.best)
        r.runnerUp.push(t.second)
        r.margin.push(t.margin)
        r.scale.push(t.scale)
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
