/** Human views of `lora pack`'s result and of a `lora-pack` summary for `lora inspect`. */
import {renderTable} from './table.js'
import type {PackSummary} from '../core/pack/inspect-pack.js'
import type {PackResult} from '../core/pack/pack-adapters.js'
import {formatBytes} from '../core/units.js'

/** Rows listed before "… N more". */
const MAX_ROWS = 40

const percent = (share: number) => `${(100 * share).toFixed(1)}%`
const count = (n: number, noun: string) => `${n} ${noun}${n === 1 ? '' : 's'}`

export function renderPackSummary(p: PackSummary): string {
  const b = p.bytes
  const lines = [
    `${p.format} v${p.format_version} by ${p.tool} ${p.tool_version}: ${count(p.adapters, 'adapter')} in ${p.slots} slots (slot 0 = no adapter), ${count(p.modules.length, 'module')}, ${p.dtype}`,
    `base model: ${p.base_model_name_or_path ?? '(mixed or none)'}`,
    `bytes: ${formatBytes(b.file)} file = ${formatBytes(b.header)} header + ${formatBytes(b.stacks)} A/B stacks + ${formatBytes(b.scaling)} scaling`,
    `padding: ${formatBytes(b.padding)} of zeros (${percent(b.padding_share)} of the file): rank padding ${formatBytes(b.rank_padding)} (${percent(b.rank_padding_share)}), empty slots ${formatBytes(b.empty_slots)} (${percent(b.empty_slots_share)}), null slot ${formatBytes(b.null_slot)} (${percent(b.null_slot_share)})`,
    '',
    renderTable(
      ['module', 'kind', 'in', 'out', 'R', 'adapters', 'r range', 'bytes', 'padding'],
      p.modules.slice(0, MAX_ROWS).map((m) => [m.name, m.kind, m.in, m.out, m.R, m.adapters, `${m.r_min}..${m.r_max}`, m.bytes, m.padding_bytes]),
    ),
  ]
  if (p.modules.length > MAX_ROWS) lines.push(`… ${p.modules.length - MAX_ROWS} more modules (--json lists all)`)
  const adapters = p.manifest.adapters
  lines.push(
    '',
    renderTable(
      ['slot', 'adapter', 'r', 'alpha', 'modules', 'sha256'],
      adapters.slice(0, MAX_ROWS).map((a) => [a.slot, a.name, a.r, a.lora_alpha, a.modules.length, a.sha256.slice(0, 16)]),
    ),
  )
  if (adapters.length > MAX_ROWS) lines.push(`… ${adapters.length - MAX_ROWS} more adapters (--json lists all)`)
  return lines.join('\n')
}

/** Two lines: what was packed, and the bytes in, out and of padding. */
export function renderPackResult(result: PackResult): string {
  const share = result.bytes_out > 0 ? ((100 * result.padding_bytes) / result.bytes_out).toFixed(1) : '0'
  return [
    `packed ${count(result.adapters, 'adapter')} into ${result.out}: ${result.slots} slots (slot 0 = no adapter), ${count(result.modules, 'module')}, ${result.dtype}`,
    `${formatBytes(result.bytes_in)} in, ${formatBytes(result.bytes_out)} out, ${formatBytes(result.padding_bytes)} of zero padding (${share}%), ${result.seconds.toFixed(2)} s`,
  ].join('\n')
}
