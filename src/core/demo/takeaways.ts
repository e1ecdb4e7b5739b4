/** One sentence per demo step, computed from the step's report (no figure is written in advance). */
import {SCENARIOS, SCENARIO_LABELS} from '../merge/quality.js'
import {BASELINE} from '../serve/registry.js'
import {formatBytes} from '../units.js'
import type {BenchStep} from './step-bench.js'
import type {CompressStep} from './step-compress.js'
import type {MergeStep} from './step-merge.js'
import type {PackStep} from './step-pack.js'
import type {SynthStep} from './step-synth.js'

const pct = (share: number) => `${(100 * share).toFixed(1)}%`
const plural = (n: number, noun: string) => `${n} ${noun}${n === 1 ? '' : 's'}`

export function synthTakeaway(s: SynthStep): string {
  const ranks = [...new Set(s.adapters.adapters.map((a) => a.r))].sort((a, b) => a - b)
  return `${plural(s.adapters.count, 'adapter')} of rank ${ranks.join('/')} on ${s.adapters.modules_per_adapter} modules each (${formatBytes(s.adapters.bytes)} of weights) for a ${(s.base.parameters / 1e6).toFixed(1)} M-parameter base (${formatBytes(s.base.bytes)})`
}

export function packTakeaway(p: PackStep): string {
  const b = p.bytes
  const padded = p.ranks.filter((r) => r < p.R)
  return `one ${formatBytes(b.file)} file serves all ${plural(p.result.adapters, 'adapter')} (${p.result.slots} slots); ${pct(b.padding_share)} of it is zeros: ${pct(b.rank_padding_share)} rank padding${padded.length > 0 ? ` (ranks ${padded.join('/')} padded to R = ${p.R})` : ''}, ${pct(b.null_slot_share)} the null slot`
}

export function compressTakeaway(c: CompressStep): string {
  const t = c.result.totals
  const meets = c.choice.met ? `every adapter within ${c.choice.max_error} relative error` : `no swept K kept every adapter within ${c.choice.max_error}`
  return `one shared B per module at K = ${c.choice.K} shrinks the A/B stacks from ${formatBytes(t.bytes_before)} to ${formatBytes(t.bytes_after)} (${t.savings_pct.toFixed(1)}% saved) with ${meets} (largest ${t.error_max.toFixed(3)}, mean ${t.error_mean.toFixed(3)})`
}

/** `(a)` of `(a) merge, then quantize`. */
const letter = (s: (typeof SCENARIOS)[number]) => SCENARIO_LABELS[s].slice(0, 3)

export function mergeTakeaway(m: MergeStep): string {
  const parts = m.runs.map(({scheme, result}) => {
    const totals = result.report?.totals ?? {}
    const rows = SCENARIOS.flatMap((s) => {
      const f = totals[s]
      return f && f.weight_rel_error !== null && f.adapter_retained !== null ? [{s, error: f.weight_rel_error, retained: f.adapter_retained, snr: f.delta_snr}] : []
    })
    if (rows.length === 0) return `${scheme}: no quality figures`
    const byError = [...rows].sort((x, y) => x.error - y.error)
    const best = byError[0]!
    const worst = byError.at(-1)!
    const errors = `${best === worst ? letter(best.s) : `${letter(best.s)} is most accurate (weight error ${best.error.toFixed(4)}), ${letter(worst.s)} least (${worst.error.toFixed(4)}, +${(100 * (worst.error / best.error - 1)).toFixed(0)}%)`}`
    const kept = [...rows].sort((x, y) => y.retained - x.retained)[0]!
    const snrs = rows.map((r) => r.snr ?? Infinity)
    const retained = rows.map((r) => r.retained)
    const range = (v: number[]) => `${Math.min(...v).toFixed(2)} to ${Math.max(...v).toFixed(2)}`
    const effect =
      kept.retained > 0
        ? `${letter(kept.s)} keeps ${(100 * kept.retained).toFixed(0)}% of the adapter's effect`
        : `the rounding error is larger than the adapter's own change in ${snrs.every((v) => v < 1) ? 'all three' : 'some'} (delta SNR ${range(snrs)}), so none keeps the adapter's effect (adapter retained ${range(retained)})`
    return `${scheme}: ${errors}; ${effect}`
  })
  return `${m.adapter.name} (r = ${m.adapter.r}) merged; ${parts.join('; ')}`
}

export function benchTakeaway(b: BenchStep): string {
  const counts = [...new Set(b.report.results.map((r) => r.adapters))].sort((x, y) => x - y)
  const ratios = (n: number) =>
    b.report.results
      .filter((r) => r.adapters === n && r.strategy !== BASELINE)
      .sort((x, y) => y.relative_to_base - x.relative_to_base)
  const hi = counts.at(-1)!
  const lo = counts[0]!
  const list = ratios(hi).map((r) => `${r.strategy} ${r.relative_to_base.toFixed(2)}×`).join(', ')
  const first = ratios(lo)[0]
  return `with ${plural(hi, 'adapter')} loaded: ${list} the base model's tokens/s${first && lo !== hi ? `; with ${plural(lo, 'adapter')} the fastest is ${first.strategy} (${first.relative_to_base.toFixed(2)}×)` : ''}`
}
