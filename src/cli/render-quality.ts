/** Human views of a merge quality report (`lora merge`, `lora demo`). */
import type {Figures, QualityReport} from '../core/merge/quality.js'
import {SCENARIOS, SCENARIO_LABELS} from '../core/merge/quality.js'
import {formatNumber, renderTable} from './table.js'

/** Tensors listed in the human quality table before "… N more". */
const MAX_TENSOR_ROWS = 40

/** Column prefixes of the scenarios. */
const SHORT: Record<string, string> = {merged: 'merged', merge_then_quantize: '(a)', quantized_base_unmerged: '(b)', requantize: '(c)'}

const figure = (v: number | null | undefined) => (v === null || v === undefined ? 'n/a' : Math.abs(v) >= 1e5 ? v.toExponential(2) : formatNumber(v))

/** weight_rel_error, delta_snr (null: exact, shown as inf), adapter_retained. */
export function figureCells(f: Figures | undefined): string[] {
  return f ? [figure(f.weight_rel_error), f.delta_snr === null ? 'inf' : figure(f.delta_snr), figure(f.adapter_retained)] : ['', '', '']
}

/** The quality table: one row per merged tensor, three figures per scenario, totals last. */
export function renderQuality(report: QualityReport): string {
  const scenarios = report.scheme ? SCENARIOS : (['merged'] as const)
  const headers = ['tensor', ...scenarios.flatMap((s) => [`${SHORT[s]} rel_err`, `${SHORT[s]} snr`, `${SHORT[s]} retained`])]
  const rows = report.tensors.slice(0, MAX_TENSOR_ROWS).map((t) => [`${t.name}${report.scheme && !t.quantized ? ' (float)' : ''}`, ...scenarios.flatMap((s) => figureCells(t[s]))])
  if (report.tensors.length > MAX_TENSOR_ROWS) rows.push([`… ${report.tensors.length - MAX_TENSOR_ROWS} more (--json lists all)`, ...scenarios.flatMap(() => ['', '', ''])])
  rows.push(['total', ...scenarios.flatMap((s) => figureCells(report.totals[s]))])
  const legend = report.scheme
    ? `${report.scheme}: (a) merge then quantize, (b) quantized base + unmerged 16-bit adapter, (c) re-quantize a quantized base; written: ${SHORT[report.written]}; probes: ${report.probes.source}`
    : `probes: ${report.probes.source}`
  return `${legend}\n${renderTable(headers, rows)}`
}

/** One row per (scheme, scenario) with the totals over all merged tensors. */
export function renderQualityTotals(reports: readonly QualityReport[]): string {
  const rows = reports.flatMap((r) => SCENARIOS.map((s) => [r.scheme ?? 'float', SCENARIO_LABELS[s], ...figureCells(r.totals[s])]))
  return renderTable(['scheme', 'strategy', 'weight rel_err', 'delta snr', 'adapter retained'], rows)
}
