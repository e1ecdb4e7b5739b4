/** The human table of an end-to-end bench report. */
import {e2eTitle} from '../core/e2e/e2e-outputs.js'
import type {E2eReport} from '../core/e2e/e2e-report.js'
import {formatBytes} from '../core/units.js'
import {renderTable} from './table.js'

/** One row per (strategy, adapters): throughputs, ratios to base, latency percentiles, memory, token check. */
export function renderE2eTable(report: E2eReport): string {
  const c = report.config
  const r2 = (v: number, d = 1) => (Number.isFinite(v) ? Math.round(v * 10 ** d) / 10 ** d : '—')
  const rows = report.results.map((r) => [
    r.strategy,
    r.adapters,
    r.distinct_adapters,
    r2(r.tokens_per_s.prefill),
    r2(r.tokens_per_s.decode),
    r2(r.relative_to_base.decode_tokens_per_s, 3),
    r2(r.ttft_ms.p50),
    r2(r.ttft_ms.p99),
    r2(r.itl_ms.p50, 2),
    r2(r.itl_ms.p99, 2),
    r2(r.relative_to_base.itl_p99, 3),
    formatBytes(r.memory.kv_cache_bytes_peak),
    formatBytes(r.memory.adapter_bytes),
    r.tokens_equal ? (r.near_ties > 0 ? `yes (${r.exact_requests} exact, ${r.near_ties} near ties)` : 'yes') : `NO (${r.mismatches.length}${r.mismatches.length === 10 ? '+' : ''} requests)`,
  ])
  const table = renderTable(['strategy', 'adapters', 'distinct', 'prefill tok/s', 'decode tok/s', 'decode vs base', 'TTFT p50 ms', 'TTFT p99 ms', 'ITL p50 ms', 'ITL p99 ms', 'ITL p99 vs base', 'KV peak', 'adapter bytes', 'tokens = reference'], rows)
  const lines = [
    e2eTitle(report),
    `model ${c.model.source}: ${c.model.layers} layers, ${c.model.heads} heads (${c.model.kv_heads} KV) of ${c.model.head_dim}, vocab ${c.model.vocab}; adapters ${c.adapters.source}, targets ${c.adapters.targets.join(',')}${c.adapters.shared_k !== null ? `, shared-b K ${c.adapters.shared_k}${c.adapters.shared_exact ? ' (exact)' : ''}` : ''}`,
    `scheduler: continuous batching, max batch ${c.scheduler.max_batch}, KV budget ${c.scheduler.kv_budget_bytes === null ? 'none' : formatBytes(c.scheduler.kv_budget_bytes)}; ${c.ep_detail}, onnxruntime ${c.onnxruntime_version}, ${c.threads} threads; process peak RSS ${formatBytes(c.rss_peak_bytes)}`,
  ]
  if (c.kl_to_float) lines.push(`${c.model.base_dtype} base: mean KL to the f32 base ${c.kl_to_float.mean.toExponential(3)} nats/token over ${c.kl_to_float.positions} positions (${c.kl_to_float.requests} requests, adapters applied)`)
  for (const r of report.results) if (r.tie_tolerance !== c.tie_tolerance) lines.push(`${r.strategy} at ${r.adapters} adapters: tokens checked at its own tie tolerance ${r.tie_tolerance.toExponential(2)} × the largest logit (its arithmetic is coarser than float32): ${r.exact_requests} of ${r.requests} requests exact, ${r.near_ties} near ties`)
  for (const r of report.results) if (r.stats) lines.push(`${r.strategy} at ${r.adapters} adapters: ${Object.entries(r.stats).map(([k, v]) => `${v} ${k}`).join(', ')}`)
  return [...lines, '', table].join('\n')
}
