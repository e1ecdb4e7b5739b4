/**
 * `lora bench` as one call with the command's defaults: a CI script names only
 * what it changes (`benchServing({adapters: [1000], strategies: ['gather']})`);
 * the model shape comes from the flags given, else the base's or the pack's
 * dims, else the defaults, exactly as the command resolves it.
 */
import type {Role} from '../serve/block-architectures.js'
import {resolveModelShape} from './base-dims.js'
import {runBench, type BenchOptions, type BenchOutcome} from './run-bench.js'

/** The defaults of `lora bench` (the command's flags take theirs from here). */
export const BENCH_DEFAULTS = Object.freeze({
  model: 'llama' as const,
  ranks: Object.freeze([16]) as readonly number[],
  batch: 32,
  tokens: 1,
  workload: Object.freeze({kind: 'distinct'}) as BenchOptions['workload'],
  baseFraction: 0,
  seed: 0,
  ep: 'cpu' as const,
  threads: 2,
  mergedCache: 4,
  sharedK: 16,
  tolerance: 1e-3,
  rounds: 8,
  stepsPerRound: 2,
  stackDtype: 'f32' as const,
})

/** What `benchServing` takes: every field of `BenchOptions` optional; shape fields resolved as `lora bench` does. */
export type BenchRequest = Partial<Omit<BenchOptions, 'hidden' | 'intermediate' | 'layers' | 'targets' | 'adapters' | 'block'>> & {
  hidden?: number
  intermediate?: number
  layers?: number
  /** Adapted projections (default q, k, v, o, or the pack's). */
  targets?: Role[]
  /** Adapter counts to sweep (default [100], or the pack's count). */
  adapters?: number[]
}

/**
 * Run the serving benchmark with `lora bench`'s defaults for every field not given.
 * @throws UsageError when a field contradicts `basePath`/`packPath`; GateError is not thrown
 *   here: the outcome's `toleranceFailures` is for the caller to check (`assertTolerance`).
 */
export async function benchServing(request: BenchRequest = {}): Promise<BenchOutcome> {
  const shape = await resolveModelShape({
    hidden: request.hidden,
    intermediate: request.intermediate,
    layers: request.layers,
    targets: request.targets,
    adapters: request.adapters,
    basePath: request.basePath,
    packPath: request.packPath,
  })
  return runBench({...BENCH_DEFAULTS, ...definedFields(request), ...shape})
}

function definedFields<T extends object>(o: T): Partial<T> {
  return Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined)) as Partial<T>
}
