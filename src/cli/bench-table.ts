/** Human tables for bench reports. */
import type {BenchReport} from '../core/bench/report.js'
import {BASELINE, isStrategy, strategyOf} from '../core/serve/registry.js'
import {formatBytes} from '../core/units.js'
import {renderTable} from './table.js'

/** One row per (strategy, adapters): tokens/s, latency, ratio to base, bytes, error. */
export function renderBenchTable(report: BenchReport): string {
  const c = report.config
  const head = `${c.model} hidden ${c.hidden}${c.model === 'llama' ? `, intermediate ${c.intermediate}, ${c.layers} layers, targets ${c.targets.join(',')}` : ''}; rank ${c.ranks.join('/')}${c.ranks.length > 1 ? ` (padded to ${c.rank})` : ''}; batch ${c.batch}${c.tokens_per_request > 1 ? ` × ${c.tokens_per_request} tokens (prefill)` : ' (decode)'}; workload ${c.workload}${c.base_fraction > 0 ? `, base fraction ${c.base_fraction}` : ''}; ${c.ep_detail}, onnxruntime ${c.onnxruntime_version}, ${c.threads} threads`
  const rows = report.results.map((r) => [
    r.strategy,
    r.adapters,
    round(r.tokens_per_s, 1),
    round(r.latency_ms.mean, 2),
    round(r.latency_ms.p50, 2),
    round(r.latency_ms.p99, 2),
    round(r.relative_to_base, 3),
    formatBytes(r.weight_bytes),
    r.max_abs_error.toExponential(2),
    r.samples,
  ])
  const table = renderTable(['strategy', 'adapters', 'tokens/s', 'mean ms', 'p50 ms', 'p99 ms', 'vs base', 'weights', 'max_abs_error', 'steps'], rows)
  const sharedK = report.results.some((r) => isStrategy(r.strategy) && strategyOf(r.strategy).weights.includes('shared')) ? `; shared-b K = ${c.shared_k}${c.shared_b && c.shared_b.k_min !== c.shared_b.k_max ? ` (${c.shared_b.k_min}–${c.shared_b.k_max} per module, zero-padded)` : ''}` : ''
  const stacks = report.results.some((r) => r.strategy !== BASELINE) ? `; adapter stacks ${c.stack_dtype ?? 'f32'}${c.stack_dtype === 'f16' ? ' (gathered in f16, cast to f32; products f32)' : ''}` : ''
  return [head, `weights: ${c.weights}${sharedK}${stacks}`, `note: ${c.note}`, '', table].join('\n')
}

function round(v: number, digits: number): number {
  const p = 10 ** digits
  return Math.round(v * p) / p
}
