/**
 * Bytes before and after shared-B compression, and the rules that pick K per
 * module: `--rank K`, `--max-error E`, `--savings PCT`, and the K values of
 * `--sweep`. Pure functions; no data.
 *
 * Before: the stacked `P.lora_A` [S, R, in] + `P.lora_B` [S, out, R] at the
 * input's dtype. After: `P.lora_A` [S, K, in] + `P.lora_B_shared` [out, K] at
 * the output dtype. (The pack's F32 `lora_scaling` [S] is folded into A' and
 * counted on neither side: it is 4·S bytes per module.)
 */
import {UsageError} from '../errors.js'

/** What the byte counts of one module depend on. */
export interface ModuleShape {
  readonly name: string
  readonly in: number
  readonly out: number
  /** Largest rank on the module (the pack's R). */
  readonly R: number
  /** Σ r_i over the adapters that target it. */
  readonly rankSum: number
  /** S = N + 1 (slot 0 included). */
  readonly slots: number
}

/** How K is chosen. */
export type RankSelection = {readonly rank: number} | {readonly maxError: number} | {readonly savings: number}

/** Stored bytes of the module's A and B stacks at `bytesPerElement`. */
export function bytesBefore(m: ModuleShape, bytesPerElement: number): number {
  return m.slots * m.R * (m.in + m.out) * bytesPerElement
}

/** Stored bytes of `P.lora_A` [S, K, in] + `P.lora_B_shared` [out, K]. */
export function bytesAfter(m: ModuleShape, k: number, bytesPerElement: number): number {
  return k * (m.slots * m.in + m.out) * bytesPerElement
}

/** 100 · (1 − after / before). */
export function savingsPercent(before: number, after: number): number {
  return before > 0 ? 100 * (1 - after / before) : 0
}

/** The largest K that can change anything: the rank of [C_1 … C_N] is at most min(out, Σr). */
export function maxUsefulRank(m: ModuleShape): number {
  return Math.min(m.out, m.rankSum)
}

/**
 * The largest K ≤ maxUsefulRank whose savings are at least `percent`, or 0 when even K = 1 saves less.
 */
export function rankForSavings(m: ModuleShape, percent: number, inBytes: number, outBytes: number): number {
  const budget = bytesBefore(m, inBytes) * (1 - percent / 100)
  const perK = m.slots * m.in + m.out
  let k = Math.min(maxUsefulRank(m), Math.floor(budget / (perK * outBytes)))
  while (k > 0 && savingsPercent(bytesBefore(m, inBytes), bytesAfter(m, k, outBytes)) < percent) k--
  return Math.max(0, k)
}

/**
 * The K values of `--sweep`: powers of two from 1 up to the first one at
 * which some module saves nothing any more (compression stops paying there),
 * each no larger than the largest module's useful rank.
 */
export function sweepRanks(modules: readonly ModuleShape[], inBytes: number, outBytes: number): number[] {
  const limit = Math.max(...modules.map(maxUsefulRank))
  const ks: number[] = []
  for (let k = 1; k <= limit; k *= 2) {
    ks.push(k)
    const pays = modules.every((m) => savingsPercent(bytesBefore(m, inBytes), bytesAfter(m, Math.min(k, maxUsefulRank(m)), outBytes)) > 0)
    if (!pays) break
  }
  return ks
}

/**
 * Check a selection's value before any work.
 * @throws UsageError for K ≤ 0 or not an integer, E outside (0, 1), PCT outside [0, 100)
 */
export function validateSelection(selection: RankSelection): void {
  if ('rank' in selection) {
    if (!Number.isSafeInteger(selection.rank) || selection.rank <= 0) throw new UsageError('COMPRESS_BAD_RANK', `--rank must be a positive integer (got ${selection.rank})`)
  } else if ('maxError' in selection) {
    const e = selection.maxError
    if (!(e > 0 && e < 1)) throw new UsageError('COMPRESS_BAD_MAX_ERROR', `--max-error must be a relative error strictly between 0 and 1 (got ${e})`)
  } else {
    const p = selection.savings
    if (!(p >= 0 && p < 100)) throw new UsageError('COMPRESS_BAD_SAVINGS', `--savings must be a percentage in [0, 100) (got ${p})`)
  }
}

/**
 * `--rank K` on one module: K itself, or the module's useful rank min(out, Σr)
 * when K is larger (more columns could only add bytes).
 * @throws UsageError when K exceeds the module's output dim (the shared B
 *   [out, K] cannot have more than `out` orthonormal columns)
 */
export function rankForModule(m: ModuleShape, k: number): number {
  if (k > m.out) {
    throw new UsageError('COMPRESS_RANK_TOO_LARGE', `--rank ${k} is larger than module ${m.name}'s output dim (out = ${m.out}): its shared B [out, K] holds at most ${m.out} orthonormal columns`)
  }
  return Math.min(k, maxUsefulRank(m))
}
