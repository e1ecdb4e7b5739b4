/**
 * Which adapter each request of a step wants: Punica's distinct / uniform /
 * identical cases, zipf popularity (S-LoRA's power-law traces), and a share
 * of requests with no adapter (slot 0). Deterministic from the seed.
 */
import {UsageError} from '../errors.js'
import {Rng} from '../random.js'
import type {RoutingStep} from '../serve/routing.js'

export type Workload = {kind: 'distinct'} | {kind: 'uniform'} | {kind: 'identical'} | {kind: 'zipf'; alpha: number}

/** Parse `distinct|uniform|identical|zipf:ALPHA`. */
export function parseWorkload(text: string): Workload {
  if (text === 'distinct' || text === 'uniform' || text === 'identical') return {kind: text}
  const m = /^zipf:(.+)$/.exec(text)
  if (m) {
    const alpha = Number(m[1])
    if (Number.isFinite(alpha) && alpha > 0) return {kind: 'zipf', alpha}
  }
  throw new UsageError('BAD_FLAG', `--workload must be distinct, uniform, identical or zipf:ALPHA with ALPHA > 0 (got "${text}")`)
}

/** `zipf:1.2` style name. */
export function workloadName(w: Workload): string {
  return w.kind === 'zipf' ? `zipf:${w.alpha}` : w.kind
}

export interface WorkloadOptions {
  workload: Workload
  /** Adapters N (slots 1…N). */
  adapters: number
  /** Requests per step B. */
  batch: number
  /** Share of requests with no adapter, 0…1 (rounded to whole requests per step). */
  baseFraction: number
  seed: number
  /** Number of steps to draw. */
  steps: number
}

/**
 * Draw `steps` routing steps. `distinct` gives every request of a step its
 * own adapter (while the batch is no larger than N); zipf ranks adapters by
 * a seeded permutation so the popular ones are not always the first slots.
 */
export function drawSteps(o: WorkloadOptions): RoutingStep[] {
  if (!(o.baseFraction >= 0 && o.baseFraction <= 1)) throw new UsageError('BAD_FLAG', `--base-fraction must be between 0 and 1 (got ${o.baseFraction})`)
  const rng = new Rng(o.seed, 'workload', workloadName(o.workload))
  const popularity = o.workload.kind === 'zipf' ? zipfTable(o.adapters, o.workload.alpha) : undefined
  const rankToSlot = shuffled(rng, o.adapters).map((i) => i + 1)
  const baseCount = Math.round(o.baseFraction * o.batch)
  const steps: RoutingStep[] = []
  for (let s = 0; s < o.steps; s++) {
    const slots = new Int32Array(o.batch)
    const kind = o.workload.kind
    if (kind === 'distinct') {
      const order = shuffled(rng, o.adapters)
      for (let b = 0; b < o.batch; b++) slots[b] = order[b % o.adapters]! + 1
    } else if (kind === 'identical') {
      slots.fill(rng.int(o.adapters) + 1)
    } else if (kind === 'uniform') {
      for (let b = 0; b < o.batch; b++) slots[b] = rng.int(o.adapters) + 1
    } else {
      for (let b = 0; b < o.batch; b++) slots[b] = rankToSlot[sampleTable(popularity!, rng.next())]!
    }
    for (const b of shuffled(rng, o.batch).slice(0, baseCount)) slots[b] = 0
    steps.push({slots})
  }
  return steps
}

/** Cumulative zipf probabilities P(k) ∝ k^−α, k = 1…n. */
function zipfTable(n: number, alpha: number): Float64Array {
  const cdf = new Float64Array(n)
  let sum = 0
  for (let k = 0; k < n; k++) {
    sum += 1 / (k + 1) ** alpha
    cdf[k] = sum
  }
  for (let k = 0; k < n; k++) cdf[k] = cdf[k]! / sum
  return cdf
}

function sampleTable(cdf: Float64Array, u: number): number {
  let lo = 0
  let hi = cdf.length - 1
  while (lo < hi) {
    const mid = (lo + hi) >> 1
    if (cdf[mid]! > u) hi = mid
    else lo = mid + 1
  }
  return lo
}

/** A seeded permutation of 0…n−1. */
function shuffled(rng: Rng, n: number): number[] {
  const a = Array.from({length: n}, (_, i) => i)
  for (let i = n - 1; i > 0; i--) {
    const j = rng.int(i + 1)
    ;[a[i], a[j]] = [a[j]!, a[i]!]
  }
  return a
}

/** Distinct adapters a step routes to (slot 0 excluded). */
export function distinctAdapters(step: RoutingStep): number {
  return new Set(Array.from(step.slots).filter((s) => s !== 0)).size
}
