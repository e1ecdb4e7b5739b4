/**
 * The per-position comparison of a variant's next-token distribution Q with
 * the reference's P, and the figures llama.cpp's `llama-perplexity
 * --kl-divergence` reports from it (definitions in docs/eval.md):
 *
 *   NLL_Q(t)   = −log Q(x_{t+1})                 perplexity = exp(mean NLL)
 *   PPL ratio  = exp(mean NLL_Q − mean NLL_P)     (= PPL(Q) / PPL(P))
 *   KL_t       = Σ_v P_t(v) · (log P_t(v) − log Q_t(v))   nats; mean, p90, p99, max
 *   top-1      = % of positions where argmax Q_t = argmax P_t (first index on ties)
 *   RMS Δp     = √mean((Q_t(x_{t+1}) − P_t(x_{t+1}))²), in percent
 *
 * Log-softmax is taken in float64 over float32 logits; the KL sums every
 * vocabulary entry (llama.cpp skips reference log-probabilities below −16
 * because it stores them in 16 bits; here they are kept as float32).
 * Percentiles interpolate linearly between sorted values at
 * `fraction · (n − 1)`, as llama.cpp does.
 */

/** log-softmax of `logits[offset … offset + vocab)` into `out` (float64); returns the argmax (first on ties). */
export function logSoftmaxInto(logits: ArrayLike<number>, offset: number, vocab: number, out: Float64Array | Float32Array): number {
  let max = -Infinity
  let best = 0
  for (let v = 0; v < vocab; v++) {
    const x = logits[offset + v]!
    if (x > max) {
      max = x
      best = v
    }
  }
  let sum = 0
  for (let v = 0; v < vocab; v++) sum += Math.exp(logits[offset + v]! - max)
  const lse = max + Math.log(sum)
  for (let v = 0; v < vocab; v++) out[v] = logits[offset + v]! - lse
  return best
}

/** Linear interpolation between sorted values at `fraction · (n − 1)` (llama.cpp's percentile). */
export function percentile(sorted: ArrayLike<number>, fraction: number): number {
  const n = sorted.length
  if (n === 0) return NaN
  if (fraction <= 0) return sorted[0]!
  if (fraction >= 1) return sorted[n - 1]!
  const at = fraction * (n - 1)
  const i = Math.floor(at)
  const w = at - i
  return (1 - w) * sorted[i]! + w * sorted[Math.min(i + 1, n - 1)]!
}

/** Summary of a KL distribution over positions (nats). */
export interface KldFigures {
  mean: number
  p90: number
  p99: number
  max: number
}

/** The figures of one variant against the reference. */
export interface DivergenceFigures {
  positions: number
  ppl: number
  ppl_ratio: number
  kld: KldFigures
  /** Positions where the variant's most likely token is the reference's, in percent. */
  top1_agree_pct: number
  /** RMS of the change in the probability of the actual next token, in percent. */
  rms_dp: number
}

/** Accumulates the reference's own perplexity. */
export class PerplexityAccumulator {
  private nll = 0
  private count = 0

  /** Add one scored position: its log-probabilities and the actual next token. */
  add(logProbs: ArrayLike<number>, target: number): void {
    this.nll -= logProbs[target]!
    this.count++
  }

  get positions(): number {
    return this.count
  }

  /** Mean negative log-likelihood (nats). */
  get meanNll(): number {
    return this.nll / this.count
  }

  get ppl(): number {
    return Math.exp(this.meanNll)
  }
}

/** Accumulates one variant's comparison with the reference, position by position. */
export class DivergenceAccumulator {
  private readonly kl: Float64Array
  private readonly scratch: Float64Array
  private count = 0
  private nllVariant = 0
  private nllReference = 0
  private same = 0
  private dp2 = 0

  /** @param positions how many positions will be added (the KL values are kept for percentiles) */
  constructor(
    positions: number,
    private readonly vocab: number,
  ) {
    this.kl = new Float64Array(positions)
    this.scratch = new Float64Array(vocab)
  }

  /**
   * Compare one position.
   * @param refLogProbs the reference's log-probabilities `[vocab]`
   * @param logits the variant's logits; its row starts at `offset`
   * @param target the actual next token
   */
  add(refLogProbs: ArrayLike<number>, logits: ArrayLike<number>, offset: number, target: number): void {
    if (this.count >= this.kl.length) throw new RangeError(`more positions added than the ${this.kl.length} announced`)
    const lq = this.scratch
    const top = logSoftmaxInto(logits, offset, this.vocab, lq)
    let kl = 0
    let refTop = 0
    for (let v = 0; v < this.vocab; v++) {
      const lp = refLogProbs[v]!
      if (lp > refLogProbs[refTop]!) refTop = v
      kl += Math.exp(lp) * (lp - lq[v]!)
    }
    this.kl[this.count++] = kl
    this.nllVariant -= lq[target]!
    this.nllReference -= refLogProbs[target]!
    if (top === refTop) this.same++
    const dp = Math.exp(lq[target]!) - Math.exp(refLogProbs[target]!)
    this.dp2 += dp * dp
  }

  /** The figures over every position added. */
  figures(): DivergenceFigures {
    const n = this.count
    const sorted = this.kl.slice(0, n).sort()
    let sum = 0
    for (let i = 0; i < n; i++) sum += sorted[i]!
    const meanNll = this.nllVariant / n
    return {
      positions: n,
      ppl: Math.exp(meanNll),
      ppl_ratio: Math.exp(meanNll - this.nllReference / n),
      kld: {mean: sum / n, p90: percentile(sorted, 0.9), p99: percentile(sorted, 0.99), max: n > 0 ? sorted[n - 1]! : NaN},
      top1_agree_pct: (100 * this.same) / n,
      rms_dp: 100 * Math.sqrt(this.dp2 / n),
    }
  }
}
