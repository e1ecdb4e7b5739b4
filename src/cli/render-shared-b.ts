/** Human views of `lora compress` reports and of a `lora-pack-shared-b` summary for `lora inspect`. */
import type {CompressReport, ModuleReport, ReportTotals, SweepReport} from '../core/compress/compress-file.js'
import type {SharedBSummary} from '../core/compress/inspect-shared-b.js'
import {formatBytes} from '../core/units.js'
import {formatNumber, renderTable} from './table.js'

/** Rows listed before "… N more". */
const MAX_ROWS = 40

const pct = (v: number) => `${v.toFixed(1)}%`

function moduleRows(modules: readonly ModuleReport[]): Array<Array<string | number>> {
  return modules.slice(0, MAX_ROWS).map((m) => [m.name, m.R, m.K, formatBytes(m.bytes_before), formatBytes(m.bytes_after), pct(m.savings_pct), formatNumber(m.error_mean), formatNumber(m.error_max)])
}

function totalRow(t: ReportTotals): Array<string | number> {
  return ['total', '', '', formatBytes(t.bytes_before), formatBytes(t.bytes_after), pct(t.savings_pct), formatNumber(t.error_mean), formatNumber(t.error_max)]
}

const MODULE_HEADERS = ['module', 'R', 'K', 'before', 'after', 'saved', 'error mean', 'error max']

function worstLine(t: ReportTotals): string {
  const w = t.worst_adapter
  return w ? `worst adapter: ${w.name} (slot ${w.slot}) on ${w.module}, relative error ${formatNumber(w.error)}` : 'no adapter'
}

export function renderCompressReport(r: CompressReport): string {
  const lines = [
    `wrote ${r.out}: ${r.adapters} adapters, ${r.modules.length} modules, ${r.input_dtype} → ${r.dtype}${r.normalize ? ', normalized' : ''} (${r.seconds.toFixed(1)} s)`,
    '',
    renderTable(MODULE_HEADERS, [...moduleRows(r.modules), totalRow(r.totals)]),
  ]
  if (r.modules.length > MAX_ROWS) lines.push(`… ${r.modules.length - MAX_ROWS} more modules (--json lists all)`)
  lines.push('', worstLine(r.totals), 'errors: ‖ΔW − B_shared·A′‖_F / ‖ΔW‖_F per adapter, measured on the stored values')
  return lines.join('\n')
}

/** The sweep's totals: one row per K (bytes of all modules, errors over all adapters). */
export function renderSweepTotals(r: SweepReport): string {
  return renderTable(
    ['K', 'before', 'after', 'saved', 'error mean', 'error max', 'worst adapter'],
    r.sweep.map((row) => [row.K, formatBytes(row.totals.bytes_before), formatBytes(row.totals.bytes_after), pct(row.totals.savings_pct), formatNumber(row.totals.error_mean), formatNumber(row.totals.error_max), row.totals.worst_adapter?.name ?? '']),
  )
}

/** Per-module sweep rows listed before "… N more". */
const MAX_SWEEP_ROWS = 160

export function renderSweepReport(r: SweepReport): string {
  const perModule = r.sweep.flatMap((row) => row.modules.map((m) => [m.name, m.K, formatBytes(m.bytes_after), pct(m.savings_pct), formatNumber(m.error_mean), formatNumber(m.error_max)]))
  const lines = [
    `${r.input}: ${r.adapters} adapters, ${r.sweep[0]?.modules.length ?? 0} modules, ${r.input_dtype} → ${r.dtype}${r.normalize ? ', normalized' : ''} (${r.seconds.toFixed(1)} s)`,
    '',
    renderSweepTotals(r),
    '',
    'per module:',
    renderTable(
      ['module', 'K', 'after', 'saved', 'error mean', 'error max'],
      perModule.slice(0, MAX_SWEEP_ROWS),
    ),
    ...(perModule.length > MAX_SWEEP_ROWS ? [`… ${perModule.length - MAX_SWEEP_ROWS} more rows (--json lists all)`] : []),
    '',
    'K = width of the shared B per module (capped at min(out, Σr)); errors as `lora compress --rank K` would measure them on the stored values',
  ]
  return lines.join('\n')
}

export function renderSharedBSummary(s: SharedBSummary): string {
  const selection = Object.entries(s.compression.selection).map(([k, v]) => `${k.replace('_', '-')} ${v}`).join(', ')
  const lines = [
    `${s.format} v${s.format_version} by ${s.compression.tool} ${s.compression.tool_version}: ${s.adapters} adapters in ${s.slots} slots (slot 0 = no adapter), ${s.modules.length} modules, ${s.dtype} (source ${s.source_dtype}), --${selection}${s.compression.normalize ? ', normalized' : ''}`,
    `base model: ${s.base_model_name_or_path ?? '(mixed or none)'}`,
    `bytes: ${formatBytes(s.bytes.file)} file = ${formatBytes(s.bytes.header)} header + ${formatBytes(s.bytes.tensors)} tensors; the source pack's A/B stacks: ${formatBytes(s.bytes.source_stacks)} (saved ${pct(s.bytes.savings_pct)})`,
    `errors: mean ${formatNumber(s.totals.error_mean)}, max ${formatNumber(s.totals.error_max)}${s.totals.worst_adapter ? ` (${s.totals.worst_adapter.name} on ${s.totals.worst_adapter.module})` : ''}`,
    '',
    renderTable(
      ['module', 'kind', 'in', 'out', 'R', 'K', 'adapters', 'bytes', 'saved', 'error mean', 'error max'],
      s.modules.slice(0, MAX_ROWS).map((m) => [m.name, m.kind, m.in, m.out, m.R, m.K, m.adapters, m.bytes, pct(m.savings_pct), formatNumber(m.error_mean), formatNumber(m.error_max)]),
    ),
  ]
  if (s.modules.length > MAX_ROWS) lines.push(`… ${s.modules.length - MAX_ROWS} more modules (--json lists all)`)
  return lines.join('\n')
}
