/**
 * Writing an end-to-end report (`--out`) and its plots (`--plot FILE.svg`:
 * decode throughput against adapters loaded, one line per strategy, at
 * FILE.svg; the latency CDFs of the largest adapter count at
 * FILE-latency.svg), each atomically; checked free before the run.
 */
import {checkOutputs} from '../io/output-target.js'
import {writeText} from '../bench/outputs.js'
import {renderThroughputSvg} from '../bench/plot.js'
import type {E2eReport} from './e2e-report.js'
import {renderLatencyCdfSvg} from './latency-plot.js'

/** Where the outputs go. */
export interface E2eOutputPaths {
  out?: string
  plot?: string
  force?: boolean
  /** The files the run reads (model, pack, shared-B file, trace): no output may be one of them. */
  inputs?: ReadonlyArray<string | undefined>
}

/** The latency plot's path beside the throughput plot's: `x.svg` → `x-latency.svg`. */
export function latencyPlotPath(plot: string): string {
  return plot.toLowerCase().endsWith('.svg') ? `${plot.slice(0, -4)}-latency.svg` : `${plot}-latency.svg`
}

/**
 * Refuse early (before minutes of serving) an output that exists without `force`, is an input, or cannot be written (`output-target.ts`).
 * @throws UsageError OUTPUT_EXISTS and the other refusals of `checkOutputs`
 */
export async function checkE2eOutputsFree(paths: E2eOutputPaths): Promise<void> {
  const files = [
    ...(paths.out ? [{path: paths.out, flag: '--out'}] : []),
    ...(paths.plot ? [{path: paths.plot, flag: '--plot'}, {path: latencyPlotPath(paths.plot), flag: '--plot (latency)'}] : []),
  ]
  await checkOutputs(files.map((f) => ({...f, kind: 'file' as const})), {force: paths.force, inputs: paths.inputs})
}

/** `llama 2048/5632×4, q4 base, rank 16, 32 requests 128+128, distinct, offline (cpu)`. */
export function e2eTitle(report: E2eReport): string {
  const c = report.config
  const w = c.workload
  const shape = w.kind === 'trace' ? `trace of ${w.requests} requests` : `${w.requests} requests ${w.prompt_tokens}+${w.gen_tokens}`
  const arrival = w.arrival === 'poisson' ? `Poisson ${w.rate}/s` : 'offline'
  return `${c.model.architecture} ${c.model.hidden}/${c.model.intermediate}×${c.model.layers}, ${c.model.base_dtype} base, rank ${c.adapters.rank}, ${shape}, ${w.kind}, ${arrival} (${c.ep})`
}

/** Write the JSON report and the plots where asked. */
export async function writeE2eOutputs(report: E2eReport, paths: E2eOutputPaths): Promise<void> {
  if (paths.out) await writeText(paths.out, `${JSON.stringify(report, null, 2)}\n`, paths.force)
  if (!paths.plot) return
  const title = e2eTitle(report)
  const points = report.results.map((r) => ({strategy: r.strategy, adapters: r.adapters, tokens_per_s: r.tokens_per_s.decode}))
  await writeText(paths.plot, renderThroughputSvg(points, `${title}: decode throughput`, {xLabel: 'adapters loaded', yLabel: 'decode tokens/s'}), paths.force)
  const largest = Math.max(...report.results.map((r) => r.adapters))
  const series = report.results.filter((r) => r.adapters === largest).map((r) => ({strategy: r.strategy, ttft: r.samples_ms.ttft, itl: r.samples_ms.itl}))
  await writeText(latencyPlotPath(paths.plot), renderLatencyCdfSvg(series, `${title}, ${largest} adapters: latency CDF`), paths.force)
}
