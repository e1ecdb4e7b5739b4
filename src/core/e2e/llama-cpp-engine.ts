/**
 * A `BatchEngine` over llama.cpp (`LlamaCppBatch`): each row of the batch is
 * a slot of one llama.cpp context, its KV cache kept by llama.cpp; a call
 * evaluates every row's new tokens in one batch and returns each row's next
 * token (greedy). llama.cpp applies LoRA per context, so the rows of a call
 * are grouped by the adapter file they need and the groups run one after
 * another, the context's adapter set switched before each (the scheduler's
 * `per-adapter` policy gives it one group per call; the base-alone engine
 * maps every row to no adapter, one group).
 */
import type {BatchItem, LlamaCppBatch} from '../engines/llama-cpp-batch.js'
import type {BatchEngine, EngineRow, EngineStep} from './batch-engine.js'

/** The rows of a batch: the llama.cpp slot of each, in order. */
export interface LlamaCppRows {
  readonly slots: readonly number[]
}

/** Greedy decoding on llama.cpp slots (see the module comment). */
export class LlamaCppEngine implements BatchEngine<LlamaCppRows> {
  constructor(
    private readonly batch: LlamaCppBatch,
    /** The GGUF adapter file a row's adapter is served with (null: none). */
    private readonly adapterFile: (adapter: string | null) => string | null,
    /** KV-cache bytes of one position in llama.cpp (its f16 keys and values). */
    private readonly kvBytesPerPosition: number,
  ) {}

  async prefill(rows: readonly EngineRow[]): Promise<EngineStep<LlamaCppRows>> {
    const slots: number[] = []
    try {
      for (let i = 0; i < rows.length; i++) slots.push(await this.batch.acquire())
      return {next: await this.run(rows, slots), cache: {slots}}
    } catch (error) {
      for (const s of slots) this.batch.release(s)
      throw error
    }
  }

  async decode(cache: LlamaCppRows, rows: readonly EngineRow[]): Promise<EngineStep<LlamaCppRows>> {
    if (rows.length !== cache.slots.length) throw new RangeError(`decode: ${rows.length} rows for a cache of ${cache.slots.length}`)
    return {next: await this.run(rows, cache.slots), cache}
  }

  join(caches: readonly LlamaCppRows[]): LlamaCppRows {
    return {slots: caches.flatMap((c) => c.slots)}
  }

  keep(cache: LlamaCppRows, rows: readonly number[]): LlamaCppRows {
    const kept = rows.map((i) => cache.slots[i]!)
    const stay = new Set(kept)
    for (const s of cache.slots) if (!stay.has(s)) this.batch.release(s)
    return {slots: kept}
  }

  release(cache: LlamaCppRows): void {
    for (const s of cache.slots) this.batch.release(s)
  }

  cacheBytes(cache: LlamaCppRows): number {
    return cache.slots.reduce((sum, s) => sum + this.batch.positions(s), 0) * this.kvBytesPerPosition
  }

  /** Each row's next token: the rows grouped by adapter file (in order of first appearance), one batch per group. */
  private async run(rows: readonly EngineRow[], slots: readonly number[]): Promise<number[]> {
    const groups = new Map<string | null, number[]>()
    rows.forEach((r, i) => {
      const file = this.adapterFile(r.adapter)
      const g = groups.get(file)
      if (g) g.push(i)
      else groups.set(file, [i])
    })
    const next = new Array<number>(rows.length)
    for (const [file, members] of groups) {
      await this.batch.useAdapter(file)
      const items: BatchItem[] = members.map((i) => ({slot: slots[i]!, tokens: rows[i]!.tokens}))
      const out = await this.batch.evaluate(items)
      members.forEach((i, k) => (next[i] = out[k]!))
    }
    return next
  }
}

/** KV-cache bytes one position takes in llama.cpp's default cache (F16 keys and values of every layer). */
export function llamaCppKvBytesPerToken(config: {layers: number; kvHeads: number; headDim: number}): number {
  return 2 * config.layers * config.kvHeads * config.headDim * 2
}
