/**
 * A fake `BatchEngine` for scheduler tests: a row's next token is a fixed
 * function of everything it has seen and its adapter, so any batching must
 * give each request the tokens it gets alone; the cache is the rows'
 * histories. It records every call's rows.
 */
import type {BatchEngine, EngineRow, EngineStep} from '../../../src/core/e2e/batch-engine.js'
import type {E2eRequest} from '../../../src/core/e2e/requests.js'

/** The next token after `history` for `adapter`. */
export function nextToken(history: readonly number[], adapter: string | null): number {
  let h = adapter === null ? 7 : [...adapter].reduce((s, c) => s * 31 + c.charCodeAt(0), 11)
  for (const t of history) h = (h * 131 + t + 1) % 1000003
  return h % 97
}

/** The tokens `request` gets decoded alone. */
export function alone(request: E2eRequest): number[] {
  const history = [...request.prompt]
  const out: number[] = []
  while (out.length < request.maxTokens) {
    const t = nextToken(history, request.adapter)
    out.push(t)
    history.push(t)
  }
  return out
}

/** A fake engine over token histories. */
export class FakeEngine implements BatchEngine<number[][]> {
  readonly calls: Array<{kind: 'prefill' | 'decode'; adapters: (string | null)[]}> = []

  async prefill(rows: readonly EngineRow[]): Promise<EngineStep<number[][]>> {
    this.calls.push({kind: 'prefill', adapters: rows.map((r) => r.adapter)})
    const cache = rows.map((r) => [...r.tokens])
    return {next: cache.map((h, i) => nextToken(h, rows[i]!.adapter)), cache}
  }

  async decode(cache: number[][], rows: readonly EngineRow[]): Promise<EngineStep<number[][]>> {
    if (cache.length !== rows.length) throw new Error(`decode: ${rows.length} rows on a cache of ${cache.length}`)
    this.calls.push({kind: 'decode', adapters: rows.map((r) => r.adapter)})
    const next = cache.map((h, i) => [...h, ...rows[i]!.tokens])
    return {next: next.map((h, i) => nextToken(h, rows[i]!.adapter)), cache: next}
  }

  join(caches: readonly number[][][]): number[][] {
    return caches.flat()
  }

  keep(cache: number[][], rows: readonly number[]): number[][] {
    return rows.map((r) => cache[r]!)
  }

  cacheBytes(cache: number[][]): number {
    return cache.reduce((s, h) => s + h.length, 0)
  }
}

/** A request: `prompt` tokens, `maxTokens`, `adapter`, arriving at `arrival` s. */
export function request(id: string, prompt: number[], maxTokens: number, adapter: string | null = null, arrival = 0): E2eRequest {
  return {id, prompt, maxTokens, adapter, arrival}
}
