/**
 * What the scheduler drives: one strategy on one model, as two calls over
 * a batch of rows (each row a request, with the adapter it asks for), and
 * the batch's KV cache as an opaque value the engine can split and join.
 *
 * - `prefill`: new rows, no past: each row's prompt; returns each row's
 *   first generated token (greedy) and the rows' cache.
 * - `decode`: one token per row on top of the rows' cache; returns each
 *   row's next token and the grown cache.
 *
 * Prefill and decode are separate calls because onnxruntime's
 * `GroupQueryAttention` refuses several new tokens per row on top of a past
 * when the batch holds more than one row.
 *
 * How long a call takes is measured by a `StepTimer`: the wall clock in a
 * benchmark, a cost model in tests (no test measures wall time).
 */

/** One row of a call: its new tokens and the adapter it asks for (null: the base alone). */
export interface EngineRow {
  readonly tokens: readonly number[]
  readonly adapter: string | null
  /** The most positions this row's request reaches (prompt + tokens to generate), where known: engines that allocate caches size them by it. */
  readonly positions?: number
}

/** The outcome of a call: each row's next token (greedy) and the rows' cache. */
export interface EngineStep<C> {
  readonly next: readonly number[]
  readonly cache: C
}

/** A strategy on a model, driven call by call (see the module comment). */
export interface BatchEngine<C = unknown> {
  /** Run the prompts of new rows (no past). */
  prefill(rows: readonly EngineRow[]): Promise<EngineStep<C>>
  /** Run one new token per row on top of `cache` (the rows in the cache's order). */
  decode(cache: C, rows: readonly EngineRow[]): Promise<EngineStep<C>>
  /** The rows of several caches, in order, as one. */
  join(caches: readonly C[]): C
  /** Rows `rows` of a cache (in that order). */
  keep(cache: C, rows: readonly number[]): C
  /** Bytes a cache holds. */
  cacheBytes(cache: C): number
  /** Drop a whole cache (engines that hold rows outside JavaScript, llama.cpp's slots, give them back). */
  release?(cache: C): void
}

/** One call as the timer sees it. */
export interface TimedCall {
  readonly kind: 'prefill' | 'decode'
  /** Rows in the call. */
  readonly rows: number
  /** New tokens in the call (prompt tokens for prefill, one per row for decode). */
  readonly tokens: number
  /** Distinct adapters among the rows (null counts as one). */
  readonly adapters: number
}

/** Measures a call: runs it and says how many milliseconds it took. */
export interface StepTimer {
  time<T>(call: TimedCall, run: () => Promise<T>): Promise<{value: T; ms: number}>
}

/** The wall clock (`performance.now()`). */
export const wallTimer: StepTimer = {
  async time(_call, run) {
    const t0 = performance.now()
    const value = await run()
    return {value, ms: performance.now() - t0}
  },
}

/** A timer that charges each call what `cost` says (tests: a fake clock). */
export function costTimer(cost: (call: TimedCall) => number): StepTimer {
  return {
    async time(call, run) {
      return {value: await run(), ms: cost(call)}
    },
  }
}
