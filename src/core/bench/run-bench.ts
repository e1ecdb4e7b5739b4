/**
 * `lora bench`: multi-adapter batch serving measured on onnxruntime. For each
 * adapter count: build (or reuse) the weights, one executor per strategy,
 * warm them (every adapter routed once), check one step of every strategy
 * against the float64 reference, then time them interleaved.
 */
import {existsSync} from 'node:fs'
import {tmpdir} from 'node:os'
import {join} from 'node:path'
import {GateError, UsageError} from '../errors.js'
import {assertDiskFits, assertMemoryFits, availableMemoryBytes} from '../io/resources.js'
import {createWorkFolder} from '../io/temporaries.js'
import {ExecutionProviderChoice, ortVersion, resolveProvider} from '../onnx/session.js'
import type {ProgressCallback} from '../progress.js'
import {Rng} from '../random.js'
import {createExecutor} from '../serve/executors.js'
import {StackDims, moduleSpecs} from '../serve/lora-layout.js'
import {compareRows, referenceRows} from '../serve/reference.js'
import {BASELINE, STRATEGY_TABLE, Strategy, strategyOf} from '../serve/registry.js'
import type {RoutingStep} from '../serve/routing.js'
import type {Executor, ReferenceKind} from '../serve/strategy.js'
import {SharedInfo, StackDtype, WeightSet, WeightSetSpec, prepareWeightSet, weightSetBytes, weightSetKey} from '../serve/weights/weight-set.js'
import {formatBytes} from '../units.js'
import {BenchConfig, BenchReport, BenchResult, ToleranceFailure} from './report.js'
import {latencyStats, timeInterleaved} from './runner.js'
import {Workload, drawSteps, workloadName} from './workload.js'

/** Said in every report: what the llama model leaves out. */
export const ATTENTION_NOTE = 'attention mixing across tokens is left out (it does not depend on adapters); q, k and v are summed into o_proj so all three stay computed'

/** What `lora bench` runs: the model's dims and adapted projections (`StackDims`; `block`: the pack's block when it is not the square Llama block, from `resolveModelShape`) and the rest. */
export interface BenchOptions extends StackDims {
  /** Adapter counts to sweep. */
  adapters: readonly number[]
  /** Ranks assigned in turn (padded to the largest). */
  ranks: readonly number[]
  batch: number
  /** Tokens per request (1 = decode, T = `--prefill T`). */
  tokens: number
  workload: Workload
  baseFraction: number
  seed: number
  /** Strategies to run; all that fit in memory when absent. */
  strategies?: readonly Strategy[]
  ep: ExecutionProviderChoice
  threads: number
  mergedCache: number
  sharedK: number
  /** Largest allowed max_abs_error / max |y_ref|. */
  tolerance: number
  rounds: number
  stepsPerRound: number
  /** Cache folder for weights and models (kept); a temporary one (removed) when absent. */
  workDir?: string
  basePath?: string
  packPath?: string
  /** A `lora-pack-shared-b` file compressed from `packPath` (K from the file); without it, shared-b serves the pack compressed in memory at `sharedK`, or synthetic weights. */
  sharedBPath?: string
  /** How the adapter stacks and shared-b's A' are stored (f16: gathered in f16, cast to f32 after the Gather); default f32. */
  stackDtype?: StackDtype
  /** Token rows checked against the reference per strategy. */
  sampleRows?: number
  onProgress?: ProgressCallback
  /** Lines for the user (skipped strategies, …). */
  onNote?: (line: string) => void
}

export interface BenchOutcome {
  report: BenchReport
  toleranceFailures: ToleranceFailure[]
  notes: string[]
}

/** Run the bench. Gate failures are returned, not thrown (the caller writes the report first). */
export async function runBench(o: BenchOptions): Promise<BenchOutcome> {
  validate(o)
  const provider = await resolveProvider(o.ep)
  const notes: string[] = []
  const note = (line: string) => {
    notes.push(line)
    o.onNote?.(line)
  }
  // the sizes first: nothing is allocated or written for a run that cannot fit
  assertBenchFits(o, o.workDir ?? tmpdir(), Math.max(...o.ranks))
  // a temporary folder can hold gigabytes of weights: removed on Ctrl-C too, and by a later run after a SIGKILL
  const scratch = o.workDir ? undefined : await createWorkFolder(tmpdir(), 'bench')
  const workDir = o.workDir ?? scratch!.path
  const results: BenchResult[] = []
  const toleranceFailures: ToleranceFailure[] = []
  let rank = Math.max(...o.ranks)
  let shared: SharedInfo | null = null
  try {
    for (const adapters of o.adapters) {
      const wanted = o.strategies ?? defaultStrategies(o, adapters, note)
      const spec = weightSetSpec(o, adapters, wanted, rank)
      const set = await prepareWeightSet(spec, {workDir, onProgress: o.onProgress})
      rank = set.rank
      shared = set.info.shared ?? shared
      if (set.info.shared) describeShared(set.info.shared, o).forEach(note)
      results.push(...(await benchOneCount(o, set, wanted, provider.ep, toleranceFailures)))
    }
  } finally {
    await scratch?.remove()
  }
  const report: BenchReport = {
    config: {
      model: o.model,
      hidden: o.hidden,
      intermediate: o.intermediate,
      layers: o.model === 'layer' ? 1 : o.layers,
      rank,
      batch: o.batch,
      workload: workloadName(o.workload),
      ep: provider.ep,
      ep_detail: provider.detail,
      onnxruntime_version: await ortVersion(),
      ranks: o.packPath ? [rank] : [...o.ranks],
      targets: o.model === 'layer' ? ['hidden×hidden linear'] : [...o.targets],
      tokens_per_request: o.tokens,
      adapters: [...o.adapters],
      base_fraction: o.baseFraction,
      seed: o.seed,
      shared_k: shared?.width ?? o.sharedK,
      shared_b: shared ? sharedReport(shared, o) : null,
      merged_cache: o.mergedCache,
      stack_dtype: o.stackDtype ?? 'f32',
      ...(o.block ? {block: o.block} : {}),
      tolerance: o.tolerance,
      threads: o.threads,
      weights: weightsDescription(o, shared),
      note: o.model === 'llama' ? ATTENTION_NOTE : 'one hidden×hidden linear layer',
    },
    results,
  }
  return {report, toleranceFailures, notes}
}

async function benchOneCount(o: BenchOptions, set: WeightSet, strategies: readonly Strategy[], ep: Awaited<ReturnType<typeof resolveProvider>>['ep'], failures: ToleranceFailure[]): Promise<BenchResult[]> {
  const adapters = set.spec.adapters
  const D = o.hidden
  const rows = o.batch * o.tokens
  const x = new Float32Array(rows * D)
  const rng = new Rng(o.seed, 'bench-input')
  for (let i = 0; i < x.length; i++) x[i] = rng.next() * 2 - 1
  const steps = drawSteps({workload: o.workload, adapters, batch: o.batch, baseFraction: o.baseFraction, seed: o.seed, steps: 32})
  const executors: Executor[] = []
  try {
    const order: Strategy[] = [BASELINE, ...strategies.filter((s) => s !== BASELINE)]
    for (const s of order) {
      executors.push(await createExecutor(set, s, {ep, threads: o.threads, tokens: o.tokens, batch: o.batch, mergedCache: o.mergedCache}))
      await executors.at(-1)!.warm(x, o.batch, adapters)
    }
    const errors = await checkAgainstReference(o, set, executors, steps[0]!, x)
    const samples = await timeInterleaved(executors, steps, x, {
      rounds: o.rounds,
      stepsPerRound: o.stepsPerRound,
      warmupSteps: 2,
      budgetMs: 15_000,
      minSamples: 3,
      onProgress: o.onProgress,
    })
    const baseStats = latencyStats(samples.get(BASELINE)!)
    const baseTps = rows / (baseStats.mean / 1000)
    const out: BenchResult[] = []
    for (const e of executors) {
      const stats = latencyStats(samples.get(e.strategy)!)
      const tps = rows / (stats.mean / 1000)
      const err = errors.get(e.strategy)!
      if (!(err.maxAbsError <= o.tolerance * err.maxAbsRef)) failures.push({strategy: e.strategy, adapters, relativeError: err.maxAbsError / err.maxAbsRef})
      if (!(strategies as readonly string[]).includes(e.strategy) && e.strategy !== BASELINE) continue
      out.push({
        strategy: e.strategy,
        adapters,
        tokens_per_s: tps,
        latency_ms: {mean: stats.mean, p50: stats.p50, p99: stats.p99},
        relative_to_base: tps / baseTps,
        weight_bytes: e.weightBytes,
        max_abs_error: err.maxAbsError,
        samples: stats.samples,
      })
    }
    return out
  } finally {
    for (const e of executors) await e.close()
  }
}

/** The model's dims as the weight set and the graphs take them. */
function dimsOf(o: BenchOptions): StackDims {
  return {model: o.model, hidden: o.hidden, intermediate: o.intermediate, layers: o.layers, targets: [...o.targets], ...(o.block ? {block: o.block} : {})}
}

/** The weight set of one adapter count. */
function weightSetSpec(o: BenchOptions, adapters: number, strategies: readonly Strategy[], rank: number): WeightSetSpec {
  return {
    dims: dimsOf(o),
    adapters,
    ranks: o.packPath ? [rank] : [...o.ranks],
    sharedK: o.sharedK,
    fuse: true,
    seed: o.seed,
    include: {stacks: reads(strategies, 'stacks'), shared: reads(strategies, 'shared')},
    ...(o.basePath ? {basePath: o.basePath} : {}),
    ...(o.packPath ? {packPath: o.packPath} : {}),
    ...(o.sharedBPath ? {sharedBPath: o.sharedBPath} : {}),
    ...(o.stackDtype === 'f16' ? {stackDtype: 'f16' as const} : {}),
  }
}

/** JavaScript heap per slot: slot ranks, workload tables and routing arrays hold a few numbers per adapter. */
const HEAP_BYTES_PER_SLOT = 64

/**
 * Refuse a run whose weight sets do not fit on the work folder's disk, or
 * whose inputs, activations and per-adapter tables do not fit in memory,
 * before anything is allocated or written. Sets already built and reused
 * cost no disk.
 * @throws UsageError NOT_ENOUGH_DISK, NOT_ENOUGH_MEMORY with the estimate
 */
function assertBenchFits(o: BenchOptions, workDir: string, rank: number): void {
  const all = o.strategies ?? STRATEGY_TABLE.map((s) => s.name)
  const disk = o.adapters.map((n) => {
    const spec = weightSetSpec(o, n, all, rank)
    const built = existsSync(join(workDir, weightSetKey(spec), 'index.json'))
    return {path: workDir, bytes: built ? 0 : weightSetBytes(spec, rank, o.sharedK), what: `the weight set of ${n} adapters`}
  })
  assertDiskFits(disk, 'bench')
  const rows = o.batch * o.tokens
  const widest = Math.max(o.hidden, o.model === 'layer' ? o.hidden : o.intermediate)
  const slots = Math.max(...o.adapters) + 1
  assertMemoryFits(
    [
      {bytes: rows * o.hidden * 4, largestArray: rows * o.hidden * 4, what: `the inputs (${rows} rows × ${o.hidden})`},
      {bytes: rows * widest * 4 * 4 * all.length, largestArray: rows * widest * 4, what: `the activations of ${all.length} strategies`},
      {bytes: slots * HEAP_BYTES_PER_SLOT, heap: slots * HEAP_BYTES_PER_SLOT, what: `the tables of ${slots - 1} adapters`},
    ],
    'bench',
  )
}

/** Where the weights came from, in words (`config.weights`). */
function weightsDescription(o: BenchOptions, shared: SharedInfo | null): string {
  const main = o.packPath ? `pack ${o.packPath}` + (o.basePath ? `, base ${o.basePath}` : ', synthetic base') : o.basePath ? `base ${o.basePath}, synthetic adapters` : `synthetic (seed ${o.seed})`
  if (!shared || shared.kind === 'synthetic') return o.packPath || o.basePath ? `${main}; shared-b synthetic (K = ${o.sharedK})` : main
  return `${main}; shared-b ${sharedOrigin(shared, o)}`
}

function sharedOrigin(shared: SharedInfo, o: BenchOptions): string {
  return shared.kind === 'file' ? `from the compressed file ${o.sharedBPath}` : `compressed in memory from the pack at K = ${o.sharedK}`
}

/** `config.shared_b`: where the shared-B weights came from, their K, padding and compression errors. */
function sharedReport(shared: SharedInfo, o: BenchOptions): NonNullable<BenchConfig['shared_b']> {
  const ks = Object.values(shared.ranks)
  return {
    source: shared.kind,
    path: shared.kind === 'file' ? o.sharedBPath! : shared.kind === 'compressed' ? o.packPath! : null,
    k: shared.width,
    k_min: Math.min(...ks),
    k_max: Math.max(...ks),
    padding_bytes: shared.paddingBytes,
    error_mean: shared.errors?.mean ?? null,
    error_max: shared.errors?.max ?? null,
  }
}

/** Lines for the user about real shared-B weights: K per module, padding, compression error. */
function describeShared(shared: SharedInfo, o: BenchOptions): string[] {
  if (shared.kind === 'synthetic') return []
  const ks = Object.values(shared.ranks)
  const [lo, hi] = [Math.min(...ks), Math.max(...ks)]
  const kText = lo === hi ? `K = ${hi} on every module` : `K ${lo}–${hi} per module, padded with zeros to ${hi} (${formatBytes(shared.paddingBytes)} of padding, ${((100 * shared.paddingBytes) / shared.bytes).toFixed(1)}% of the shared-b weights)`
  const errors = shared.errors ? `; compression error ‖ΔW − U·A'‖/‖ΔW‖ mean ${shared.errors.mean.toPrecision(3)}, max ${shared.errors.max.toPrecision(3)}` : ''
  return [...shared.notes, `shared-b ${sharedOrigin(shared, o)}: ${kText}${errors}`]
}

/** Run step 0 on every executor and compare sampled rows with the float64 reference. */
async function checkAgainstReference(o: BenchOptions, set: WeightSet, executors: readonly Executor[], step: RoutingStep, x: Float32Array): Promise<Map<string, {maxAbsError: number; maxAbsRef: number}>> {
  const count = Math.min(o.sampleRows ?? 4, o.batch)
  const rows: number[] = []
  for (let i = 0; i < count; i++) {
    const b = Math.floor((i * o.batch) / count)
    rows.push(b * o.tokens + ((i * 37) % o.tokens))
  }
  const references = new Map<ReferenceKind, Float64Array[]>()
  const referenceFor = async (kind: ReferenceKind) => {
    if (!references.has(kind)) references.set(kind, await referenceRows({set, kind, step, tokens: o.tokens, x, rows}))
    return references.get(kind)!
  }
  const out = new Map<string, {maxAbsError: number; maxAbsRef: number}>()
  for (const e of executors) {
    const y = await e.run(step, x)
    out.set(e.strategy, compareRows(y, o.hidden, rows, await referenceFor(strategyOf(e.strategy).reference)))
  }
  return out
}

/** Whether any of `strategies` reads the weight-set part `part`. */
function reads(strategies: readonly Strategy[], part: 'stacks' | 'shared'): boolean {
  return strategies.some((s) => strategyOf(s).weights.includes(part))
}

/** All strategies, less those whose working copies of the stacks would not fit in memory. */
function defaultStrategies(o: BenchOptions, adapters: number, note: (line: string) => void): Strategy[] {
  const R = Math.max(...o.ranks)
  let stackBytes = 0
  for (const m of moduleSpecs(dimsOf(o))) if (m.targeted) stackBytes += (adapters + 1) * R * (m.out + m.in) * 4
  const available = availableMemoryBytes()
  const GiB = (bytes: number) => (bytes / 2 ** 30).toFixed(1)
  return STRATEGY_TABLE.filter((s) => {
    const need = s.workingMemory ? s.workingMemory.stackCopies * stackBytes : 0
    if (need <= available / 2) return true
    note(`${s.name} skipped at ${adapters} adapters: ${s.workingMemory!.what} need about ${GiB(need)} GiB, over half of the ${GiB(available)} GiB available (name it in --strategies to run it anyway)`)
    return false
  }).map((s) => s.name)
}


function validate(o: BenchOptions): void {
  if (o.adapters.length === 0) throw new UsageError('BAD_FLAG', '--adapters needs at least one count')
  if (!(o.tolerance > 0)) throw new UsageError('BAD_FLAG', `--tolerance must be positive (got ${o.tolerance})`)
  if (o.mergedCache < 1) throw new UsageError('BAD_FLAG', `--merged-cache must be at least 1 (got ${o.mergedCache})`)
  if (o.strategies && reads(o.strategies, 'shared') && o.sharedK < 1) throw new UsageError('BAD_FLAG', '--shared-k must be at least 1')
  if (o.packPath && o.model === 'layer') throw new UsageError('BAD_FLAG', '--pack needs --model llama (a pack holds a whole model\'s modules)')
  if (o.sharedBPath && !o.packPath) throw new UsageError('BAD_FLAG', `--shared-b ${o.sharedBPath} needs --pack (the lora-pack it was compressed from)`)
  if (o.sharedBPath && o.strategies && !reads(o.strategies, 'shared')) {
    const servedBy = STRATEGY_TABLE.filter((s) => s.weights.includes('shared')).map((s) => s.name)
    throw new UsageError('BAD_FLAG', `--shared-b is served by the ${servedBy.join(', ')} strategy, which --strategies leaves out`)
  }
}

/** Throw the tolerance gate's error when any strategy failed it. */
export function assertTolerance(failures: readonly ToleranceFailure[], tolerance: number): void {
  if (failures.length === 0) return
  const list = failures.map((f) => `${f.strategy} at ${f.adapters} adapters (${f.relativeError.toExponential(2)})`).join(', ')
  throw new GateError('TOLERANCE_EXCEEDED', `max_abs_error / max |y_ref| over --tolerance ${tolerance}: ${list}`)
}
