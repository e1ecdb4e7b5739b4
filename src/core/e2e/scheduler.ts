/**
 * Continuous batching over a `BatchEngine`, on a clock of its own.
 *
 * Each iteration (`step`):
 * 1. requests whose arrival time has come join the waiting queue (when
 *    nothing runs or waits, the clock jumps to the next arrival);
 * 2. admission, first come first served: waiting requests join the running
 *    batch while it holds fewer than `maxBatch` rows and their KV
 *    reservations (prompt + max_tokens positions each) stay within the KV
 *    budget; with the `per-adapter` policy only requests of the adapter the
 *    batch already serves join (a new adapter's requests wait until the batch
 *    empties: merged weights and llama.cpp serve one adapter at a time);
 * 3. one prefill call for the newly admitted requests together (their first
 *    token), their cache joined to the batch's;
 * 4. one decode call for every running request (one token each);
 * 5. requests that have their `max_tokens` leave (their cache rows are dropped).
 *
 * The clock advances by each call's measured time (`StepTimer`), so several
 * schedulers can take turns on one machine (`serveInterleaved`), each
 * measuring only its own calls, and arrival times (Poisson) hold on each
 * one's own clock; idle time is skipped, not waited. Decoding is greedy, so
 * a request's tokens do not depend on what it was batched with.
 */
import {UsageError} from '../errors.js'
import {sanitizeName} from '../formats/safetensors-header.js'
import type {BatchEngine, EngineRow, StepTimer} from './batch-engine.js'
import type {E2eRequest} from './requests.js'

/** How requests are batched: any adapters together, or one adapter at a time. */
export type BatchPolicy = 'mixed' | 'per-adapter'

/** A scheduler's engine, requests and limits. */
export interface SchedulerOptions<C> {
  readonly engine: BatchEngine<C>
  readonly requests: readonly E2eRequest[]
  /** Rows in the running batch at most. */
  readonly maxBatch: number
  /** KV-cache bytes one position of one request takes. */
  readonly kvBytesPerToken: number
  /** Bytes of KV reservations the running batch may hold; none when absent. */
  readonly kvBudgetBytes?: number
  readonly policy: BatchPolicy
  readonly timer: StepTimer
}

/** What happened to one request, on the scheduler's clock (ms). */
export interface RequestRecord {
  readonly id: string
  readonly adapter: string | null
  readonly arrivalMs: number
  readonly promptTokens: number
  /** The generated tokens. */
  readonly tokens: number[]
  /** When each generated token was ready (ms). */
  readonly times: number[]
}

/** One engine call. */
export interface CallRecord {
  readonly kind: 'prefill' | 'decode'
  readonly rows: number
  readonly tokens: number
  readonly adapters: number
  readonly ms: number
  /** When it ended (ms). */
  readonly endMs: number
}

/** Everything a scheduler recorded. */
export interface ServeTrace {
  /** In the order the requests were given. */
  readonly requests: readonly RequestRecord[]
  readonly calls: readonly CallRecord[]
  /** When the last request finished (ms). */
  readonly makespanMs: number
  /** Largest KV cache the engine held (bytes). */
  readonly peakKvBytes: number
  /** Largest sum of KV reservations (bytes). */
  readonly peakReservedBytes: number
  /** Largest running batch (rows). */
  readonly peakRows: number
}

interface Running {
  readonly request: E2eRequest
  readonly record: RequestRecord
  readonly reserved: number
}

/** Continuous batching of `requests` over one engine (see the module comment). */
export class Scheduler<C> {
  private readonly pending: E2eRequest[]
  private readonly waiting: E2eRequest[] = []
  private running: Running[] = []
  private cache: C | undefined
  private nextArrival = 0
  private now = 0
  private readonly records = new Map<string, RequestRecord>()
  private readonly calls: CallRecord[] = []
  private peakKvBytes = 0
  private peakReservedBytes = 0
  private peakRows = 0
  private generated = 0

  /**
   * @throws UsageError when `maxBatch` is below 1, request ids repeat, or a request alone needs more KV cache than the budget
   */
  constructor(private readonly o: SchedulerOptions<C>) {
    if (!(Number.isSafeInteger(o.maxBatch) && o.maxBatch >= 1)) throw new UsageError('BAD_FLAG', `--max-batch must be a positive integer (got ${o.maxBatch})`)
    for (const r of o.requests) {
      if (this.records.has(r.id)) throw new UsageError('BAD_WORKLOAD', `request id "${sanitizeName(r.id)}" appears twice`)
      const need = this.reservation(r)
      if (o.kvBudgetBytes !== undefined && need > o.kvBudgetBytes) {
        throw new UsageError('KV_BUDGET_TOO_SMALL', `request ${sanitizeName(r.id)} needs ${need} bytes of KV cache (${r.prompt.length + r.maxTokens} positions), more than the KV budget of ${o.kvBudgetBytes} bytes`)
      }
      this.records.set(r.id, {id: r.id, adapter: r.adapter, arrivalMs: r.arrival * 1000, promptTokens: r.prompt.length, tokens: [], times: []})
    }
    this.pending = o.requests.map((r, i) => ({r, i})).sort((a, b) => a.r.arrival - b.r.arrival || a.i - b.i).map((x) => x.r)
  }

  /** Whether every request has all its tokens. */
  get done(): boolean {
    return this.nextArrival >= this.pending.length && this.waiting.length === 0 && this.running.length === 0
  }

  /** The clock (ms). */
  get clock(): number {
    return this.now
  }

  /** Tokens generated so far, over all requests. */
  get generatedTokens(): number {
    return this.generated
  }

  /**
   * One iteration (see the module comment).
   * @returns whether requests remain
   */
  async step(): Promise<boolean> {
    if (this.done) return false
    this.arrive()
    if (this.running.length === 0 && this.waiting.length === 0) {
      this.now = Math.max(this.now, this.pending[this.nextArrival]!.arrival * 1000)
      this.arrive()
    }
    const admitted = this.admit()
    if (admitted.length > 0) await this.prefill(admitted)
    if (this.running.length > 0) await this.decode()
    return !this.done
  }

  /** Run every step until all requests are done. */
  async run(): Promise<ServeTrace> {
    while (await this.step()) {
      // each step advances the clock
    }
    return this.trace()
  }

  /** What was recorded so far. */
  trace(): ServeTrace {
    const requests = this.o.requests.map((r) => this.records.get(r.id)!)
    const makespanMs = Math.max(0, ...requests.map((r) => r.times.at(-1) ?? 0))
    return {requests, calls: [...this.calls], makespanMs, peakKvBytes: this.peakKvBytes, peakReservedBytes: this.peakReservedBytes, peakRows: this.peakRows}
  }

  private reservation(r: E2eRequest): number {
    return (r.prompt.length + r.maxTokens) * this.o.kvBytesPerToken
  }

  private arrive(): void {
    while (this.nextArrival < this.pending.length && this.pending[this.nextArrival]!.arrival * 1000 <= this.now) this.waiting.push(this.pending[this.nextArrival++]!)
  }

  private admit(): E2eRequest[] {
    const picked: E2eRequest[] = []
    if (this.waiting.length === 0) return picked
    let reserved = this.running.reduce((s, r) => s + r.reserved, 0)
    const group = this.running.length > 0 ? this.running[0]!.request.adapter : this.waiting[0]!.adapter
    for (const r of this.waiting) {
      if (this.running.length + picked.length >= this.o.maxBatch) break
      if (this.o.policy === 'per-adapter' && r.adapter !== group) continue
      const need = this.reservation(r)
      if (this.o.kvBudgetBytes !== undefined && reserved + need > this.o.kvBudgetBytes) break
      picked.push(r)
      reserved += need
    }
    const taken = new Set(picked)
    this.waiting.splice(0, this.waiting.length, ...this.waiting.filter((r) => !taken.has(r)))
    return picked
  }

  private async prefill(admitted: readonly E2eRequest[]): Promise<void> {
    const rows: EngineRow[] = admitted.map((r) => ({tokens: r.prompt, adapter: r.adapter, positions: r.prompt.length + r.maxTokens}))
    const call = {kind: 'prefill' as const, rows: rows.length, tokens: rows.reduce((s, r) => s + r.tokens.length, 0), adapters: distinct(rows)}
    const joined: Running[] = [...this.running, ...admitted.map((request) => ({request, record: this.records.get(request.id)!, reserved: this.reservation(request)}))]
    const next = await this.timed(call, joined, async () => {
      const out = await this.o.engine.prefill(rows)
      return {next: out.next, cache: this.cache === undefined ? out.cache : this.o.engine.join([this.cache, out.cache])}
    })
    admitted.forEach((request, i) => {
      const record = this.records.get(request.id)!
      record.tokens.push(next[i]!)
      record.times.push(this.now)
    })
    this.generated += admitted.length
    this.settle(joined)
  }

  private async decode(): Promise<void> {
    const rows: EngineRow[] = this.running.map((r) => ({tokens: [r.record.tokens.at(-1)!], adapter: r.request.adapter, positions: r.request.prompt.length + r.request.maxTokens}))
    const call = {kind: 'decode' as const, rows: rows.length, tokens: rows.length, adapters: distinct(rows)}
    const running = this.running
    const next = await this.timed(call, running.map((r) => ({...r, grows: true})), () => this.o.engine.decode(this.cache!, rows))
    running.forEach((r, i) => {
      r.record.tokens.push(next[i]!)
      r.record.times.push(this.now)
    })
    this.generated += running.length
    this.settle(running)
  }

  /**
   * Time `run` (the engine call, and the cache rows of requests it finishes
   * dropped: the engine's own work), advance the clock, record the call.
   * @param rows the rows of the call's cache, in order; `grows`: the call gives them a token
   */
  private async timed(call: Omit<CallRecord, 'ms' | 'endMs'>, rows: ReadonlyArray<Running & {grows?: boolean}>, run: () => Promise<{next: readonly number[]; cache: C}>): Promise<readonly number[]> {
    const isNew = (r: Running) => r.record.tokens.length === 0
    const finishes = rows.map((r) => r.record.tokens.length + (r.grows || isNew(r) ? 1 : 0) >= r.request.maxTokens)
    const keep = finishes.map((f, i) => (f ? -1 : i)).filter((i) => i >= 0)
    const {value, ms} = await this.o.timer.time(call, async () => {
      const out = await run()
      this.peakKvBytes = Math.max(this.peakKvBytes, this.o.engine.cacheBytes(out.cache))
      if (keep.length === 0) this.o.engine.release?.(out.cache)
      const cache = keep.length === rows.length ? out.cache : keep.length === 0 ? undefined : this.o.engine.keep(out.cache, keep)
      return {next: out.next, cache}
    })
    this.now += ms
    this.calls.push({...call, ms, endMs: this.now})
    this.cache = value.cache
    return value.next
  }

  /** The running batch after a call: `rows` less those that have all their tokens. */
  private settle(rows: readonly Running[]): void {
    this.peakReservedBytes = Math.max(this.peakReservedBytes, rows.reduce((s, r) => s + r.reserved, 0))
    this.peakRows = Math.max(this.peakRows, rows.length)
    this.running = rows.filter((r) => r.record.tokens.length < r.request.maxTokens).map(({request, record, reserved}) => ({request, record, reserved}))
  }
}
function distinct(rows: readonly EngineRow[]): number {
  return new Set(rows.map((r) => r.adapter)).size
}

/**
 * Several schedulers taking turns, one iteration each per round, the order
 * rotating every round, until all are done: a busy neighbour slows them all
 * alike, and each one's clock counts only its own calls.
 */
export async function serveInterleaved(schedulers: readonly {step(): Promise<boolean>}[], onRound?: (round: number) => void): Promise<void> {
  const active = schedulers.map(() => true)
  const n = schedulers.length
  for (let round = 0; active.some(Boolean); round++) {
    for (let i = 0; i < n; i++) {
      const k = (i + round) % n
      if (active[k]) active[k] = await schedulers[k]!.step()
    }
    onRound?.(round)
  }
}
