/**
 * Correctness first: a strategy's generated tokens against the reference,
 * request by request. They must be equal; the one exception is a near tie:
 * where the strategy chose one of the reference's top tokens (the runner-up,
 * or a contender up to `TIE_CANDIDATES`) whose logit is within
 * `tieTolerance` × max(1, largest |logit|) of the best, the two computations
 * differ only by rounding (float32 sums in another order; a peer's coarser
 * arithmetic at its own tolerance), not by a routing mistake. The request is then
 * counted as a near tie and compared no further (its continuations differ
 * from there on). Anything else is a mismatch, named by request and position.
 */
import type {ReferenceTokens} from './reference-run.js'
import type {RequestRecord} from './scheduler.js'

/** Default tie tolerance: float32 sums in another order differ by ~1e-6 of the largest logit; 1e-4 leaves room for long reductions. */
export const DEFAULT_TIE_TOLERANCE = 1e-4

/** The first differing token of a request. */
export interface TokenMismatch {
  readonly request: string
  readonly adapter: string | null
  /** Index of the generated token (0 = the first). */
  readonly position: number
  readonly expected: number
  readonly got: number
}

/** The check of one strategy. */
export interface TokenCheck {
  /** No mismatch (near ties allowed). */
  readonly equal: boolean
  /** Requests whose tokens are all the reference's. */
  readonly exact: number
  /** Requests that diverged at a near tie. */
  readonly nearTies: number
  readonly mismatches: readonly TokenMismatch[]
}

/**
 * Check every request of `records` against its reference.
 * @throws Error when a request has no reference (a bug of the caller)
 */
export function checkTokens(records: readonly RequestRecord[], reference: ReadonlyMap<string, ReferenceTokens>, tieTolerance = DEFAULT_TIE_TOLERANCE): TokenCheck {
  const mismatches: TokenMismatch[] = []
  let nearTies = 0
  let exact = 0
  for (const r of records) {
    const ref = reference.get(r.id)
    if (!ref) throw new Error(`no reference tokens for request ${r.id}`)
    const n = Math.max(r.tokens.length, ref.tokens.length)
    if (r.tokens.length === ref.tokens.length && r.tokens.every((t, p) => t === ref.tokens[p])) exact++
    for (let p = 0; p < n; p++) {
      const got = r.tokens[p]
      const expected = ref.tokens[p]
      if (got === expected) continue
      const tie = got !== undefined && expected !== undefined && gapTo(ref, p, got) <= tieTolerance * Math.max(1, ref.scale[p]!)
      if (tie) nearTies++
      else mismatches.push({request: r.id, adapter: r.adapter, position: p, expected: expected ?? -1, got: got ?? -1})
      break
    }
  }
  return {equal: mismatches.length === 0, exact, nearTies, mismatches}
}

/** How far below the reference's best logit at position `p` the token `got` is (Infinity when it is not among the kept top tokens). */
function gapTo(ref: ReferenceTokens, p: number, got: number): number {
  if (got === ref.runnerUp[p]) return ref.margin[p]!
  const c = ref.contenders?.[p]
  const i = c ? c.tokens.indexOf(got) : -1
  return i >= 0 ? c!.gaps[i]! : Infinity
}

/** One line naming the first mismatches of a strategy. */
export function describeMismatches(strategy: string, check: TokenCheck, limit = 3): string {
  const shown = check.mismatches.slice(0, limit).map((m) => `request ${m.request} (adapter ${m.adapter ?? 'none'}) token ${m.position}: ${m.got} where the reference has ${m.expected}`)
  const more = check.mismatches.length > limit ? `, and ${check.mismatches.length - limit} more requests` : ''
  return `${strategy}: ${shown.join('; ')}${more}`
}
