/**
 * The demo's rule for the shared width K, applied to a compress sweep: the
 * smallest swept K whose largest per-adapter relative error is at most E and
 * that still saves bytes. When no swept K meets E, the saving K with the
 * smallest largest error (stated as such).
 */
import {InputError} from '../errors.js'
import type {SweepReport} from '../compress/compress-file.js'

export interface SharedRankChoice {
  K: number
  /** E of the rule. */
  max_error: number
  /** Whether K meets the rule (false: the fallback). */
  met: boolean
  /** The rule in words. */
  rule: string
}

/**
 * Choose K from a sweep.
 * @throws InputError when no swept K saves any bytes
 */
export function chooseSharedRank(sweep: SweepReport, maxError: number): SharedRankChoice {
  const saving = sweep.sweep.filter((row) => row.totals.savings_pct > 0)
  if (saving.length === 0) throw new InputError('DEMO_NO_SAVING_K', `compress sweep of ${sweep.input}: no K saves bytes`)
  const rule = `the smallest K whose largest per-adapter error is ≤ ${maxError} and that saves bytes`
  const meeting = saving.find((row) => row.totals.error_max <= maxError)
  if (meeting) return {K: meeting.K, max_error: maxError, met: true, rule}
  const best = saving.reduce((a, b) => (b.totals.error_max < a.totals.error_max ? b : a))
  return {K: best.K, max_error: maxError, met: false, rule: `${rule}; none does, so the saving K with the smallest largest error`}
}
