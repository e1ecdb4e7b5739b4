/**
 * The `--max-kld` gate: a variant fails when its mean KL divergence from the
 * reference exceeds the threshold or is not a finite number (a NaN never
 * passes). Only gated variants count (`base` is not one: its KL is the
 * adapters' own effect).
 */
import {GateError} from '../errors.js'

/** What the gate reads of a variant. */
export interface GatedFigure {
  readonly variant: string
  readonly gated: boolean
  readonly kld: {readonly mean: number}
}

/** The gate's verdict. */
export interface KldGate {
  max_kld: number
  passed: boolean
  /** Gated variants whose mean KL exceeds `max_kld` or is not finite (null in JSON). */
  failing: Array<{variant: string; kld_mean: number}>
}

/** Check every gated variant against `maxKld`. */
export function kldGate(variants: readonly GatedFigure[], maxKld: number): KldGate {
  const failing = variants.filter((v) => v.gated && !(Number.isFinite(v.kld.mean) && v.kld.mean <= maxKld)).map((v) => ({variant: v.variant, kld_mean: v.kld.mean}))
  return {max_kld: maxKld, passed: failing.length === 0, failing}
}

/** The GateError of a failed gate: how many variants, the worst one. */
export function kldGateError(gate: KldGate): GateError {
  const worst = [...gate.failing].sort((a, b) => (Number.isFinite(b.kld_mean) ? b.kld_mean : Infinity) - (Number.isFinite(a.kld_mean) ? a.kld_mean : Infinity))[0]!
  const n = gate.failing.length
  return new GateError(
    'MAX_KLD_EXCEEDED',
    `--max-kld ${gate.max_kld}: ${n} variant${n === 1 ? '' : 's'} ${n === 1 ? 'exceeds' : 'exceed'} it (worst: ${worst.variant}, mean KL ${Number.isFinite(worst.kld_mean) ? worst.kld_mean.toFixed(6) : String(worst.kld_mean)} nats)`,
  )
}
