/**
 * Mean KL divergence between two models' next-token distributions over the
 * same positions: KL(ref ‖ other) = Σ p_ref · (log p_ref − log p_other) per
 * position, in float64 from float32 logits, averaged (nats).
 */

/** log-softmax of one row of logits, float64. */
function logSoftmax(row: Float32Array): Float64Array {
  let max = -Infinity
  for (const v of row) if (v > max) max = v
  let sum = 0
  for (const v of row) sum += Math.exp(v - max)
  const lse = max + Math.log(sum)
  return Float64Array.from(row, (v) => v - lse)
}

/** KL(ref ‖ other) of two rows of logits (nats). */
export function klOfLogits(ref: Float32Array, other: Float32Array): number {
  if (ref.length !== other.length) throw new RangeError(`KL: rows of ${ref.length} and ${other.length} logits`)
  const p = logSoftmax(ref)
  const q = logSoftmax(other)
  let kl = 0
  for (let i = 0; i < p.length; i++) kl += Math.exp(p[i]!) * (p[i]! - q[i]!)
  return Math.max(0, kl)
}

/**
 * Mean KL over every position of row-major `[n, vocab]` logit blocks.
 * @returns the mean and the number of positions
 */
export function meanKl(ref: readonly Float32Array[], other: readonly Float32Array[], vocab: number): {mean: number; positions: number} {
  let sum = 0
  let positions = 0
  ref.forEach((block, s) => {
    const o = other[s]!
    for (let at = 0; at + vocab <= block.length; at += vocab) {
      sum += klOfLogits(block.subarray(at, at + vocab), o.subarray(at, at + vocab))
      positions++
    }
  })
  return {mean: positions > 0 ? sum / positions : NaN, positions}
}
