/**
 * What `npm run bench:serve` reads off bench reports: the strategy that won a
 * row, where one strategy's throughput falls behind another's over an
 * adapter sweep, and what padding mixed ranks to the largest costs in bytes.
 */
import type {BenchReport, BenchResult} from './report.js'
import {adapterRank} from '../serve/weights/weight-sources.js'

/** The result of `strategy` in `report` (first adapter count). */
export function resultOf(report: BenchReport, strategy: string): BenchResult | undefined {
  return report.results.find((r) => r.strategy === strategy)
}

/** The one of `strategies` with the highest `relative_to_base` in `report`; undefined when none ran. */
export function bestOf(report: BenchReport, strategies: readonly string[]): BenchResult | undefined {
  let best: BenchResult | undefined
  for (const s of strategies) {
    const r = resultOf(report, s)
    if (r && (!best || r.relative_to_base > best.relative_to_base)) best = r
  }
  return best
}

/** Where `strategy` falls behind `reference` over the adapter counts of a sweep. */
export type Crossover =
  | {kind: 'never'; upTo: number}
  | {kind: 'always'; from: number}
  /** Behind from `to` on, ahead at `from`; `at` interpolates log(throughput ratio) linearly in log(adapters). */
  | {kind: 'between'; from: number; to: number; at: number}

/**
 * The first adapter count at which `strategy` serves fewer tokens/s than
 * `reference` (both measured in the same run at each count).
 * @throws RangeError when the two have no adapter count in common
 */
export function crossover(results: readonly BenchResult[], strategy: string, reference: string): Crossover {
  const tps = (s: string, n: number) => results.find((r) => r.strategy === s && r.adapters === n)?.tokens_per_s
  const counts = [...new Set(results.map((r) => r.adapters))].filter((n) => tps(strategy, n) !== undefined && tps(reference, n) !== undefined).sort((a, b) => a - b)
  if (counts.length === 0) throw new RangeError(`${strategy} and ${reference} share no adapter count`)
  const logRatio = (n: number) => Math.log(tps(strategy, n)! / tps(reference, n)!)
  const i = counts.findIndex((n) => logRatio(n) < 0)
  if (i < 0) return {kind: 'never', upTo: counts.at(-1)!}
  if (i === 0) return {kind: 'always', from: counts[0]!}
  const [from, to] = [counts[i - 1]!, counts[i]!]
  const [d0, d1] = [logRatio(from), logRatio(to)]
  const t = d0 / (d0 - d1)
  return {kind: 'between', from, to, at: Math.exp(Math.log(from) + t * (Math.log(to) - Math.log(from)))}
}

/** A crossover in words. */
export function describeCrossover(c: Crossover, strategy: string, reference: string): string {
  if (c.kind === 'never') return `${strategy} stays at least as fast as ${reference} up to ${c.upTo} adapters (no crossover in the sweep)`
  if (c.kind === 'always') return `${strategy} is slower than ${reference} from the first count of the sweep (${c.from} adapters) on`
  return `${strategy} falls behind ${reference} between ${c.from} and ${c.to} adapters (≈ ${c.at.toFixed(0)} by log interpolation)`
}

/**
 * Bytes of rank padding in stacks of `stackBytes` (S = N + 1 slots, every
 * slot padded to the largest rank R): Σ_i (R − r_i) of the N adapters, in
 * rank columns, times the bytes of one column of one slot.
 */
export function rankPaddingBytes(stackBytes: number, ranks: readonly number[], adapters: number): {bytes: number; share: number; meanRank: number} {
  const R = Math.max(...ranks)
  let sum = 0
  for (let i = 0; i < adapters; i++) sum += adapterRank({ranks}, i)
  const perColumn = stackBytes / ((adapters + 1) * R)
  const bytes = (adapters * R - sum) * perColumn
  return {bytes, share: bytes / stackBytes, meanRank: sum / adapters}
}
