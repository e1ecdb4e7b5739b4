/**
 * The bench report (`{config, results}`), its gates (`--tolerance` on
 * max_abs_error, `--baseline` + `--max-regression` on relative_to_base) and
 * reading an old report back.
 */
import {readRegularTextSync} from '../io/regular-file.js'
import {InputError, UsageError} from '../errors.js'

export interface BenchConfig {
  model: string
  hidden: number
  intermediate: number
  layers: number
  rank: number
  batch: number
  workload: string
  ep: string
  ep_detail: string
  onnxruntime_version: string
  /** Beyond the required fields: what else shaped the run. */
  ranks: number[]
  targets: string[]
  tokens_per_request: number
  adapters: number[]
  base_fraction: number
  seed: number
  /** Width K of the shared-b tensors (the largest module K when they differ). */
  shared_k: number
  /** The shared-B weights, when the shared-b strategy ran: where they came from (source: synthetic, file or compressed = the pack compressed in memory), K per module (min/max; modules below k are zero-padded), padding bytes, compression errors (null for synthetic). */
  shared_b: {source: string; path: string | null; k: number; k_min: number; k_max: number; padding_bytes: number; error_mean: number | null; error_max: number | null} | null
  merged_cache: number
  /** How the adapter stacks (and shared-b's A') were stored: f32, or f16 gathered and cast to f32 in the graph. Absent in reports written before the flag: f32. */
  stack_dtype?: 'f32' | 'f16'
  /** A pack's block when it is not the square Llama block: its family and every role's [out, in]. */
  block?: {architecture: string; shapes: Record<string, [number, number]>}
  tolerance: number
  threads: number
  weights: string
  note: string
}

export interface BenchResult {
  strategy: string
  adapters: number
  tokens_per_s: number
  latency_ms: {mean: number; p50: number; p99: number}
  relative_to_base: number
  weight_bytes: number
  max_abs_error: number
  samples: number
}

export interface BenchReport {
  config: BenchConfig
  results: BenchResult[]
}

/** A strategy whose error against the float64 reference is over the tolerance. */
export interface ToleranceFailure {
  strategy: string
  adapters: number
  relativeError: number
}

/**
 * The fields of a configuration that a ratio to base depends on: a baseline
 * that differs in any of them measured something else, and comparing with it
 * would gate on the difference. (Seeds, tolerance, the adapter counts swept
 * and versions do not change what a ratio means.)
 */
export const COMPARED_CONFIG_FIELDS = ['model', 'hidden', 'intermediate', 'layers', 'rank', 'ranks', 'targets', 'batch', 'tokens_per_request', 'workload', 'base_fraction', 'ep', 'threads', 'stack_dtype', 'shared_k', 'merged_cache', 'weights'] as const

/** `field (this run x, baseline y)` for every compared field that `config` gives and `baseline` has otherwise. */
export function configDifferences(config: Partial<BenchConfig>, baseline: BenchConfig): string[] {
  const out: string[] = []
  for (const field of COMPARED_CONFIG_FIELDS) {
    if (!(field in config) || config[field] === undefined) continue
    const mine = JSON.stringify(config[field] ?? (field === 'stack_dtype' ? 'f32' : null))
    const theirs = JSON.stringify(baseline[field] ?? (field === 'stack_dtype' ? 'f32' : null))
    if (mine !== theirs) out.push(`${field} (this run ${mine}, baseline ${theirs})`)
  }
  return out
}

/**
 * Refuse a baseline of another configuration (exit 2: not a regression, a different experiment).
 * @throws UsageError BASELINE_MISMATCH naming the differing fields
 */
export function assertComparable(config: Partial<BenchConfig>, baseline: BenchConfig, baselinePath: string): void {
  const differences = configDifferences(config, baseline)
  if (differences.length > 0) {
    throw new UsageError('BASELINE_MISMATCH', `--baseline ${baselinePath} measured another configuration: ${differences.join(', ')}; compare runs of the same configuration`)
  }
}

/** Result rows that fell by more than `maxRegression` against a baseline. */
export interface RegressionFailure {
  strategy: string
  adapters: number
  baseline: number
  current: number
}

/**
 * Compare `report` with `baseline`: a failure for every (strategy, adapters)
 * present in both whose relative_to_base fell by more than `maxRegression`
 * (a fraction: 0.10 = 10%). Ratios, so the gate holds across machines.
 */
export function compareWithBaseline(report: BenchReport, baseline: BenchReport, maxRegression: number): RegressionFailure[] {
  const old = new Map(baseline.results.map((r) => [`${r.strategy}@${r.adapters}`, r]))
  const failures: RegressionFailure[] = []
  for (const r of report.results) {
    const b = old.get(`${r.strategy}@${r.adapters}`)
    if (!b || !Number.isFinite(b.relative_to_base)) continue
    if (!(r.relative_to_base >= b.relative_to_base * (1 - maxRegression))) {
      failures.push({strategy: r.strategy, adapters: r.adapters, baseline: b.relative_to_base, current: r.relative_to_base})
    }
  }
  return failures
}

/** A bench report larger than this is not one. */
export const MAX_REPORT_BYTES = 256 * 1024 * 1024

/**
 * Read a report written by `--out` / `--json`.
 * @throws InputError when the file is missing, not JSON, or lacks `results`.
 */
export function readReport(path: string): BenchReport {
  let text: string
  try {
    text = readRegularTextSync(path, MAX_REPORT_BYTES, (size) => new Error(`${size} bytes is too large for a bench report`))
  } catch (error) {
    const message = (error as Error).message
    const reason = message.startsWith(`read ${path}: `) ? message.slice(`read ${path}: `.length) : message
    throw new InputError('BASELINE_UNREADABLE', `read baseline ${path}: ${reason}`)
  }
  let parsed: unknown
  try {
    parsed = JSON.parse(text)
  } catch {
    throw new InputError('BASELINE_NOT_JSON', `read baseline ${path}: not valid JSON`)
  }
  const report = parsed as Partial<BenchReport>
  if (!report || typeof report !== 'object' || !Array.isArray(report.results) || !report.config) {
    throw new InputError('BASELINE_BAD_SHAPE', `read baseline ${path}: expected a bench report {config, results[]} (from lora bench --out or --json)`)
  }
  for (const [i, r] of report.results.entries()) {
    if (typeof r?.strategy !== 'string' || typeof r?.adapters !== 'number' || typeof r?.relative_to_base !== 'number') {
      throw new InputError('BASELINE_BAD_SHAPE', `read baseline ${path}: results[${i}] lacks strategy, adapters or relative_to_base`)
    }
  }
  return report as BenchReport
}

/** One line per regression failure. */
export function describeRegressions(failures: readonly RegressionFailure[], maxRegression: number): string {
  return failures
    .map((f) => `${f.strategy} at ${f.adapters} adapters: relative_to_base ${f.current.toFixed(3)} vs baseline ${f.baseline.toFixed(3)} (fell ${(100 * (1 - f.current / f.baseline)).toFixed(1)}%, limit ${(100 * maxRegression).toFixed(1)}%)`)
    .join('; ')
}
