/**
 * Demo step 5: the serving benchmark on onnxruntime (CPU) over a few adapter
 * counts, on the demo's base weights with stacks of the demo's ranks; the
 * report and the throughput plot are written next to the other artifacts.
 */
import {performance} from 'node:perf_hooks'
import {writeBenchOutputs} from '../bench/outputs.js'
import type {BenchReport} from '../bench/report.js'
import {assertTolerance, runBench} from '../bench/run-bench.js'
import type {ProgressCallback} from '../progress.js'
import type {DemoSettings} from './settings.js'
import type {DemoWorkspace} from './workspace.js'

/** The largest max_abs_error / max |y_ref| accepted (as `lora bench`'s default). */
export const DEMO_BENCH_TOLERANCE = 1e-3

export interface BenchStep {
  report: BenchReport
  /** The JSON report and the SVG plot as written. */
  json: string
  plot: string
  notes: string[]
  seconds: number
}

/**
 * Run the bench; `sharedK` is the shared-B width the compress step chose.
 * @throws GateError TOLERANCE_EXCEEDED when a strategy disagrees with the float64 reference (after writing the report)
 */
export async function benchStep(ws: DemoWorkspace, basePath: string, s: DemoSettings, sharedK: number, options: {seed: number; force: boolean; onProgress?: ProgressCallback; onNote?: (line: string) => void}): Promise<BenchStep> {
  const started = performance.now()
  const b = s.bench
  const outcome = await runBench({
    model: 'llama',
    hidden: s.hidden,
    intermediate: s.intermediate,
    layers: s.layers,
    targets: s.targets,
    adapters: b.counts,
    ranks: s.ranks,
    batch: b.batch,
    tokens: 1,
    workload: {kind: 'distinct'},
    baseFraction: 0,
    seed: options.seed,
    strategies: b.strategies,
    ep: 'cpu',
    threads: b.threads,
    mergedCache: b.mergedCache,
    sharedK,
    tolerance: DEMO_BENCH_TOLERANCE,
    rounds: b.rounds,
    stepsPerRound: b.stepsPerRound,
    basePath,
    onProgress: options.onProgress,
    onNote: options.onNote,
  })
  const json = ws.path('bench.json')
  const plot = ws.path('bench.svg')
  await writeBenchOutputs(outcome.report, {out: json, plot, force: options.force})
  ws.wrote('bench.json')
  ws.wrote('bench.svg')
  assertTolerance(outcome.toleranceFailures, DEMO_BENCH_TOLERANCE)
  return {report: outcome.report, json, plot, notes: outcome.notes, seconds: (performance.now() - started) / 1000}
}
