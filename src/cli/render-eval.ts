/** The human view of a `lora eval` report (also appended to `lora merge --eval`). */
import type {EvalResult} from '../core/eval/run-eval.js'
import {formatNumber, renderTable} from './table.js'

const plural = (n: number, word: string) => `${n} ${word}${n === 1 ? '' : 's'}`
const num = (v: number | null, digits = 4) => (v === null ? 'n/a' : formatNumber(v, digits))

/** The reference line, the table (one row per variant) and notes on kept tensors and the control. */
export function renderEval(result: EvalResult): string {
  const r = result.reference
  const p = result.protocol
  const head = `reference (${r.model}${r.adapters.length ? `: ${r.adapters.map((a) => (a.weight === 1 ? a.name : `${a.name}×${a.weight}`)).join(' + ')}` : ''}): PPL ${formatNumber(r.ppl)} over ${p.positions} positions (${plural(p.documents, 'document')}, ${plural(p.sequences, 'sequence')}, ctx ${p.ctx})`
  const rows = result.variants.map((v) => [
    v.variant,
    num(v.ppl),
    num(v.ppl_ratio),
    num(v.kld.mean, 6),
    num(v.kld.p90, 6),
    num(v.kld.p99, 6),
    num(v.kld.max, 6),
    num(v.top1_agree_pct, 2),
    num(v.rms_dp, 3),
    num(v.adapter_retained_output),
  ])
  const table = renderTable(['variant', 'PPL', 'PPL ratio', 'KLD mean', 'KLD p90', 'KLD p99', 'KLD max', 'top-1 %', 'RMS Δp %', 'adapter retained'], rows)
  const notes: string[] = []
  for (const v of result.variants) {
    if (v.kept_float.length > 0) notes.push(`${v.variant}: ${v.kept_float.length} of ${v.kept_float.length + (v.quantized_weights ?? 0)} weights stay in float, the scheme cannot hold them (${v.kept_float[0]!.name}: ${v.kept_float[0]!.reason}${v.kept_float.length > 1 ? '; …' : ''})`)
  }
  notes.push('KLD: KL(reference ‖ variant) per position, nats; adapter retained = 1 − KLD / KLD of the same variant without the adapters (n/a: no adapter or no control)')
  return [head, table, ...notes].join('\n')
}
