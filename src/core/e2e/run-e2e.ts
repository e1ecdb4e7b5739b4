/**
 * `lora bench --e2e`: serving requests end to end on the decoder runtime.
 * For each adapter count: load the adapters, draw (or read) the requests,
 * decode every request on the reference (base + its own adapter, plain
 * LoRA), build every strategy, serve the requests with continuous batching
 * under every strategy at once (their schedulers taking turns, each on its
 * own clock), check each strategy's tokens against the reference, and
 * compute the figures. With a 4-bit or f16 base, the KL divergence of its
 * next-token distributions to the f32 base's is measured too.
 */
import {readFileSync} from 'node:fs'
import {UsageError} from '../errors.js'
import {MemoryNeed, assertMemoryFits} from '../io/resources.js'
import type {Projection} from '../models/llama.js'
import {ExecutionProviderChoice, ortVersion, resolveProvider} from '../onnx/session.js'
import type {ProgressCallback} from '../progress.js'
import {DecoderModel, assertDecoderTensors} from '../runtime/decoder-model.js'
import type {DecoderWeights} from '../runtime/decoder-weights.js'
import {INLINE_WEIGHT_LIMIT} from '../runtime/initializer-store.js'
import {openDecoderWeights} from '../runtime/load-decoder.js'
import {Workload, workloadName} from '../bench/workload.js'
import {E2eAdapterSet, adaptedModules, packAdapters} from './adapter-set.js'
import {BaseDtype, baseVariant} from './base-dtype.js'
import {StepTimer, wallTimer} from './batch-engine.js'
import {DEFAULT_TIE_TOLERANCE, checkTokens} from './check-tokens.js'
import {kvBytesPerToken} from './decoder-engine.js'
import {E2eReport, E2eResult} from './e2e-report.js'
import {quantizationKl} from './quantization-kl.js'
import {weightBytes} from './step-traffic.js'
import {deviceBytesInUse, peakResidentBytes, residentBytes} from './memory.js'
import {itlSamples, ratiosToBase, traceMetrics, ttftSamples} from './metrics.js'
import {ReferenceTokens} from './reference-run.js'
import {referenceForm, referenceTokens} from './reference-tokens.js'
import {Arrival, E2eRequest, drawRequests, readTrace} from './requests.js'
import {Scheduler, ServeTrace, serveInterleaved} from './scheduler.js'
import {BuiltStrategy, E2eBuildContext, E2eRunFacts, E2eStrategy, e2eStrategy, E2E_STRATEGY_TABLE} from './strategies.js'
import {SyntheticDecoderDims, syntheticDecoderConfig, syntheticDecoderWeights, tensorTable} from './synthetic-decoder.js'
import {syntheticAdapters} from './synthetic-adapters.js'

/** The default adapted projections. */
export const E2E_DEFAULT_TARGETS: readonly Projection[] = ['q_proj', 'k_proj', 'v_proj', 'o_proj']

/** Everything `runE2e` needs. */
export interface E2eOptions {
  /** A model folder or GGUF file; a synthetic Llama of `dims` when absent. */
  readonly model?: string
  readonly dims: SyntheticDecoderDims
  readonly baseDtype: BaseDtype
  /** A lora-pack for the adapters; synthetic when absent. */
  readonly pack?: string
  /** The pack's lora compress output, for shared-b. */
  readonly sharedB?: string
  /** Adapter counts to run (synthetic adapters; a pack has its own count). */
  readonly adapters: readonly number[]
  readonly rank: number
  readonly targets: readonly Projection[]
  /** Width K of the synthetic shared-B form. */
  readonly sharedK: number
  readonly requests: number
  readonly promptTokens: number
  readonly genTokens: number
  /** Which adapter each request asks for; or a JSONL trace. */
  readonly workload: Workload | {readonly kind: 'trace'; readonly path: string}
  readonly baseFraction: number
  readonly arrival: Arrival
  readonly maxBatch: number
  readonly kvBudgetBytes?: number
  /** Strategies to run (base always runs); every available one when absent. */
  readonly strategies?: readonly string[]
  readonly ep: ExecutionProviderChoice
  readonly threads: number
  readonly mergedCache: number
  /** A folder whose node_modules holds node-llama-cpp (the llama.cpp peer), tried before lora's own install and the current folder. */
  readonly engineDir?: string
  readonly seed: number
  readonly tieTolerance?: number
  /** Requests over which a non-f32 base's KL to the f32 base is measured (default 4; 0: not measured). */
  readonly klRequests?: number
  /** How calls are timed (default: the wall clock). */
  readonly timer?: StepTimer
  readonly onProgress?: ProgressCallback
  readonly onNote?: (line: string) => void
}

/** Run the end-to-end benchmark. A token mismatch is reported, not thrown (`assertTokensEqual` after writing the outputs). */
export async function runE2e(o: E2eOptions): Promise<E2eReport> {
  validate(o)
  assertE2eFits(o)
  const provider = await resolveProvider(o.ep)
  const notes: string[] = []
  const note = (line: string) => {
    if (notes.includes(line)) return
    notes.push(line)
    o.onNote?.(line)
  }
  const f32 = o.model ? await openDecoderWeights(o.model) : syntheticDecoderWeights(o.dims, o.seed)
  const results: E2eResult[] = []
  let kl: E2eReport['config']['kl_to_float'] = null
  let adapterInfo: {counts: number[]; rank: number; shared_k: number | null; shared_exact: boolean; targets: string[]} = {counts: [], rank: o.rank, shared_k: null, shared_exact: false, targets: [...o.targets]}
  let requestCount = 0
  try {
    if (o.model) assertDecoderTensors(f32)
    const weights = baseVariant(f32, o.baseDtype)
    const config = weights.config
    for (const count of o.pack ? [0] : o.adapters) {
      const adapters = o.pack ? await packAdapters(o.pack, config, o.sharedB) : syntheticAdapters({count, rank: o.rank, sharedK: o.sharedK, modules: adaptedModules(config, o.targets, o.rank), seed: o.seed})
      try {
        const requests = o.workload.kind === 'trace' ? await readTrace(o.workload.path, {adapters: adapters.adapters, vocab: config.vocab, seed: o.seed}) : drawRequests({...o, workload: o.workload, adapters: adapters.adapters, vocab: config.vocab})
        requestCount = requests.length
        const longest = Math.max(...requests.map((r) => r.prompt.length + r.maxTokens))
        if (longest > config.maxPositions) throw new UsageError('CONTEXT_TOO_LONG', `a request needs ${longest} positions (prompt + generated tokens), more than the model runs (${config.maxPositions})`)
        const strategies = chooseStrategies(o, adapters, {config, model: o.model, engineDir: o.engineDir}, note)
        const need = residentEstimate(config, o.baseDtype, adapters, strategies, o.mergedCache)
        if (need > 0.8 * availableMemory()) note(`the ${strategies.length} strategies' sessions hold about ${(need / 2 ** 30).toFixed(1)} GiB together (weights per session, adapter stacks per routed strategy), near or over the ${(availableMemory() / 2 ** 30).toFixed(1)} GiB available: --strategies runs fewer at once`)
        const ctx: E2eBuildContext = {
          weights,
          adapters,
          ep: provider.ep,
          threads: o.threads,
          maxPositions: longest,
          mergedCache: o.mergedCache,
          externalData: needsExternalData(config, adapters, strategies),
          sourceWeights: f32,
          baseDtype: o.baseDtype,
          model: o.model,
          requests,
          maxBatch: o.maxBatch,
          engineDir: o.engineDir,
          note,
        }
        const reference = await referenceTokens({ctx, requests, forms: new Set(strategies.map((s) => referenceForm(s, adapters))), maxBatch: o.maxBatch, onProgress: o.onProgress})
        results.push(...(await serveAll(o, ctx, strategies, requests, reference, adapters)))
        adapterInfo = {counts: [...adapterInfo.counts, adapters.adapters.length], rank: adapters.rank, shared_k: adapters.sharedK, shared_exact: adapters.sharedExact, targets: [...new Set(adapters.modules.map((m) => m.name.split('.').at(-1)!))]}
        if (o.baseDtype !== 'f32' && kl === null && (o.klRequests ?? 4) > 0) {
          kl = await quantizationKl({f32, variant: weights, adapters, requests: requests.slice(0, o.klRequests ?? 4), tokens: reference.get('stacks') ?? reference.get('base')!, ep: provider.ep, threads: o.threads, maxPositions: longest})
        }
      } finally {
        await adapters.close()
      }
    }
  } finally {
    await f32.close()
  }
  const c = f32.config
  return {
    config: {
      kind: 'e2e',
      model: {source: o.model ?? 'synthetic', architecture: c.architecture, hidden: c.hidden, intermediate: c.intermediate, layers: c.layers, heads: c.heads, kv_heads: c.kvHeads, head_dim: c.headDim, vocab: c.vocab, base_dtype: o.baseDtype},
      adapters: {source: o.pack ?? 'synthetic', counts: adapterInfo.counts, rank: adapterInfo.rank, targets: adapterInfo.targets, shared_k: adapterInfo.shared_k, shared_b: o.sharedB ?? null, shared_exact: adapterInfo.shared_exact},
      workload: {
        kind: o.workload.kind === 'trace' ? 'trace' : workloadName(o.workload),
        trace: o.workload.kind === 'trace' ? o.workload.path : null,
        requests: requestCount,
        prompt_tokens: o.workload.kind === 'trace' ? null : o.promptTokens,
        gen_tokens: o.workload.kind === 'trace' ? null : o.genTokens,
        arrival: o.arrival.kind,
        rate: o.arrival.kind === 'poisson' ? o.arrival.rate : null,
        base_fraction: o.baseFraction,
        seed: o.seed,
      },
      scheduler: {max_batch: o.maxBatch, kv_budget_bytes: o.kvBudgetBytes ?? null, kv_bytes_per_token: kvBytesPerToken(c)},
      ep: provider.ep,
      ep_detail: provider.detail,
      onnxruntime_version: await ortVersion(),
      threads: o.threads,
      merged_cache: o.mergedCache,
      tie_tolerance: o.tieTolerance ?? DEFAULT_TIE_TOLERANCE,
      kl_to_float: kl,
      rss_peak_bytes: peakResidentBytes(),
      notes,
    },
    results,
    tokens_equal: results.every((r) => r.tokens_equal),
  }
}

/** Build every strategy, serve the requests under all of them interleaved, check and measure. */
async function serveAll(o: E2eOptions, ctx: E2eBuildContext, strategies: readonly E2eStrategy[], requests: readonly E2eRequest[], reference: ReadonlyMap<string, ReadonlyMap<string, ReferenceTokens>>, adapters: E2eAdapterSet): Promise<E2eResult[]> {
  const built: Array<{strategy: E2eStrategy; built: BuiltStrategy; sessionBytes: number | null; deviceBytes: number | null; warmStats: Record<string, number> | undefined}> = []
  try {
    for (const [i, strategy] of strategies.entries()) {
      o.onProgress?.({stage: 'build', done: i, total: strategies.length})
      const rss = residentBytes()
      const device = deviceBytesInUse(ctx.ep)
      const b = await strategy.build(ctx)
      // null where the resident set shrank meanwhile (memory of earlier stages returned): no growth to report
      const grown = residentBytes() - rss
      const sessionBytes = grown >= 0 ? grown : null
      const deviceBytes = device === null ? null : (deviceBytesInUse(ctx.ep) ?? device) - device
      await warm(b, ctx)
      built.push({strategy, built: b, sessionBytes, deviceBytes, warmStats: b.stats?.()})
    }
    const kvPerToken = kvBytesPerToken(ctx.weights.config)
    const schedulers = built.map(({strategy, built: b}) => new Scheduler({engine: b.engine, requests, maxBatch: o.maxBatch, kvBytesPerToken: kvPerToken, kvBudgetBytes: o.kvBudgetBytes, policy: strategy.policy, timer: o.timer ?? wallTimer}))
    const total = requests.reduce((s, r) => s + r.maxTokens, 0) * schedulers.length
    await serveInterleaved(schedulers, () => o.onProgress?.({stage: 'serve', done: schedulers.reduce((s, x) => s + x.generatedTokens, 0), total}))
    const traces = schedulers.map((s) => s.trace())
    const baseMetrics = traceMetrics(traces[0]!)
    const distinct = new Set(requests.map((r) => r.adapter).filter((a) => a !== null)).size
    return built.map(({strategy, built: b, sessionBytes, deviceBytes, warmStats}, i) =>
      result(o, strategy, b, traces[i]!, baseMetrics, reference.get(referenceForm(strategy, adapters))!, {sessionBytes, deviceBytes, warmStats, adapters: adapters.adapters.length, distinct}),
    )
  } finally {
    for (const b of built) await b.built.close()
  }
}

function result(o: E2eOptions, strategy: E2eStrategy, b: BuiltStrategy, trace: ServeTrace, base: ReturnType<typeof traceMetrics>, reference: ReadonlyMap<string, ReferenceTokens>, m: {sessionBytes: number | null; deviceBytes: number | null; warmStats: Record<string, number> | undefined; adapters: number; distinct: number}): E2eResult {
  const metrics = traceMetrics(trace)
  const runTolerance = o.tieTolerance ?? DEFAULT_TIE_TOLERANCE
  const tolerance = strategy.tieTolerance?.(o.baseDtype, runTolerance) ?? runTolerance
  const check = checkTokens(trace.requests, reference, tolerance)
  const round = (v: number) => Math.round(v * 100) / 100
  return {
    strategy: strategy.name,
    adapters: m.adapters,
    distinct_adapters: m.distinct,
    policy: strategy.policy,
    tokens_per_s: metrics.tokens_per_s,
    ttft_ms: metrics.ttft_ms,
    itl_ms: metrics.itl_ms,
    memory: {session_bytes: m.sessionBytes, adapter_bytes: b.adapterBytes, kv_cache_bytes_peak: trace.peakKvBytes, kv_reserved_bytes_peak: trace.peakReservedBytes, device_bytes: m.deviceBytes},
    relative_to_base: ratiosToBase(metrics, base),
    tokens_equal: check.equal,
    exact_requests: check.exact,
    near_ties: check.nearTies,
    tie_tolerance: tolerance,
    mismatches: check.mismatches.slice(0, 10),
    requests: trace.requests.length,
    prompt_tokens: metrics.prompt_tokens,
    generated_tokens: metrics.generated_tokens,
    prefill_s: metrics.prefill_s,
    decode_s: metrics.decode_s,
    makespan_s: metrics.makespan_s,
    prefill_calls: metrics.prefill_calls,
    decode_calls: metrics.decode_calls,
    mean_decode_batch: metrics.mean_decode_batch,
    peak_batch: trace.peakRows,
    stats: sinceWarm(b.stats?.(), m.warmStats),
    samples_ms: {ttft: ttftSamples(trace).map(round), itl: itlSamples(trace).map(round)},
  }
}

/** Counters less what the warm-up added. */
function sinceWarm(now: Record<string, number> | undefined, warm: Record<string, number> | undefined): Record<string, number> | null {
  if (!now) return null
  return Object.fromEntries(Object.entries(now).map(([k, v]) => [k, v - (warm?.[k] ?? 0)]))
}

/** One small request through a new engine, outside timing (sessions initialize on their first runs): up to 4 prompt tokens and one decode step, within the positions the model runs. */
async function warm(b: BuiltStrategy, ctx: E2eBuildContext): Promise<void> {
  const length = Math.max(1, Math.min(4, ctx.maxPositions - 1))
  const step = await b.engine.prefill([{tokens: Array.from({length}, (_, i) => (i + 1) % ctx.weights.config.vocab), adapter: null}])
  const cache = length + 1 <= ctx.maxPositions ? (await b.engine.decode(step.cache, [{tokens: [step.next[0]!], adapter: null}])).cache : step.cache
  b.engine.release?.(cache)
}

/** The strategies to run: base first, then those asked for with the rows they bring along (or every available one that fits in memory, peers left out). */
function chooseStrategies(o: E2eOptions, adapters: E2eAdapterSet, run: E2eRunFacts, note: (line: string) => void): E2eStrategy[] {
  if (o.strategies) {
    const named = ['base', ...o.strategies.flatMap((s) => [s, ...(e2eStrategy(s).alongside ?? [])])]
    const out = E2E_STRATEGY_TABLE.filter((s) => named.includes(s.name))
    for (const s of out) {
      const why = s.unavailable(adapters, run)
      if (why) throw new UsageError('BAD_FLAG', `--strategies ${s.name}: ${why}`)
    }
    return out
  }
  const available = availableMemory()
  const GiB = (bytes: number) => (bytes / 2 ** 30).toFixed(1)
  const peers = E2E_STRATEGY_TABLE.filter((s) => s.peer).map((s) => s.name)
  if (peers.length > 0) note(`${peers.join(', ')} left out: peer engines run when named in --strategies`)
  return E2E_STRATEGY_TABLE.filter((s) => {
    if (s.peer) return false
    const why = s.unavailable(adapters, run)
    if (why) {
      note(`${s.name} left out: ${why}`)
      return false
    }
    const need = (s.stackCopies - 1) * adapters.bytes('stacks')
    if (s.stackCopies > 1 && need > available / 2) {
      note(`${s.name} left out at ${adapters.adapters.length} adapters: its working copies of the stacks need about ${GiB(need)} GiB, over half of the ${GiB(available)} GiB available (name it in --strategies to run it anyway)`)
      return false
    }
    return true
  })
}

/** Whether the graphs' weights go to an ONNX external data file (protobuf refuses 2 GB; onnxruntime maps external stacks instead of copying them). */
function needsExternalData(c: DecoderWeights['config'], adapters: E2eAdapterSet, strategies: readonly E2eStrategy[]): boolean {
  const q = c.heads * c.headDim
  const kv = c.kvHeads * c.headDim
  const base = 4 * (c.layers * (c.hidden * (2 * q + 2 * kv) + 3 * c.hidden * c.intermediate) + 2 * c.vocab * c.hidden)
  const stacks = Math.max(adapters.bytes('stacks'), strategies.some((s) => s.reference === 'shared') ? adapters.bytes('shared') : 0)
  return base + stacks > INLINE_WEIGHT_LIMIT
}

/** Bytes the strategies' sessions hold together, roughly: the weights once per session, the stacks (and their working copies) per routed strategy, the merged copies. */
function residentEstimate(c: DecoderWeights['config'], dtype: BaseDtype, adapters: E2eAdapterSet, strategies: readonly E2eStrategy[], mergedCache: number): number {
  const weights = weightBytes(c, dtype) + 4 * c.vocab * c.hidden
  const merged = adapters.modules.reduce((s, m) => s + 4 * m.in * m.out, 0) * (mergedCache + 1)
  return strategies.reduce((sum, s) => sum + weights + (s.peer ? 0 : s.policy === 'per-adapter' ? merged : s.reference === 'base' ? 0 : s.stackCopies * adapters.bytes(s.reference === 'shared' ? 'shared' : 'stacks')), 0)
}

function availableMemory(): number {
  try {
    const m = /MemAvailable:\s+(\d+) kB/.exec(readFileSync('/proc/meminfo', 'utf8'))
    if (m) return Number(m[1]) * 1024
  } catch {
    // not Linux
  }
  return 8 * 2 ** 30
}

/** JavaScript heap per drawn token (request token lists, schedules) and per synthetic adapter (its tables). */
const HEAP_BYTES_PER_TOKEN = 16
const HEAP_BYTES_PER_ADAPTER = 256

/**
 * Refuse a run that cannot fit before anything is drawn or allocated: the
 * synthetic model's weights (every tensor in memory, one array each), the
 * requests' token lists, the adapters' tables; and requests longer than the
 * synthetic model's context.
 * @throws UsageError NOT_ENOUGH_MEMORY with the estimate; CONTEXT_TOO_LONG
 */
function assertE2eFits(o: E2eOptions): void {
  const needs: MemoryNeed[] = []
  if (!o.model) {
    const config = syntheticDecoderConfig(o.dims)
    const sizes = [...tensorTable(config).values()].map((t) => t.shape.reduce((a, b) => a * b, 1) * 4)
    needs.push({bytes: sizes.reduce((a, b) => a + b, 0), largestArray: Math.max(...sizes), what: `the synthetic model (hidden ${config.hidden}, ${config.layers} layers, vocabulary ${config.vocab})`})
    if (o.workload.kind !== 'trace' && o.promptTokens + o.genTokens > config.maxPositions) {
      throw new UsageError('CONTEXT_TOO_LONG', `a request needs ${o.promptTokens + o.genTokens} positions (prompt + generated tokens), more than the model runs (${config.maxPositions})`)
    }
  }
  if (o.workload.kind !== 'trace') needs.push({bytes: 0, heap: o.requests * (o.promptTokens + o.genTokens) * HEAP_BYTES_PER_TOKEN, what: `${o.requests} requests of ${o.promptTokens} + ${o.genTokens} tokens`})
  if (!o.pack) needs.push({bytes: 0, heap: Math.max(...o.adapters) * HEAP_BYTES_PER_ADAPTER, what: `the tables of ${Math.max(...o.adapters)} adapters`})
  assertMemoryFits(needs, 'bench --e2e')
}

function validate(o: E2eOptions): void {
  if (!o.pack && o.adapters.length === 0) throw new UsageError('BAD_FLAG', '--adapters needs at least one count')
  for (const n of o.adapters) if (!(Number.isSafeInteger(n) && n >= 1)) throw new UsageError('BAD_FLAG', `--adapters must be positive integers (got ${n})`)
  if (!(Number.isSafeInteger(o.rank) && o.rank >= 1)) throw new UsageError('BAD_FLAG', `--rank must be a positive integer (got ${o.rank})`)
  if (!(Number.isSafeInteger(o.mergedCache) && o.mergedCache >= 1)) throw new UsageError('BAD_FLAG', `--merged-cache must be at least 1 (got ${o.mergedCache})`)
  if (o.sharedB && !o.pack) throw new UsageError('BAD_FLAG', `--shared-b ${o.sharedB} needs --pack (the lora-pack it was compressed from)`)
  if (o.kvBudgetBytes !== undefined && !(o.kvBudgetBytes > 0)) throw new UsageError('BAD_FLAG', `--kv-budget must be positive (got ${o.kvBudgetBytes})`)
  if (o.targets.length === 0) throw new UsageError('BAD_FLAG', '--targets needs at least one projection')
}
