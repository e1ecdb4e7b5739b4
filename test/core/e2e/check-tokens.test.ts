/**
 * The token check: equal tokens pass, a different token is a mismatch
 * naming the request and position, and the runner-up (or another of the
 * reference's top tokens) chosen where its logit is within the tie tolerance
 * of the best is a near tie; exact requests are counted.
 */
import {suite} from 'uvu'
import * as assert from 'uvu/assert'
import {checkTokens, describeMismatches} from '../../../src/core/e2e/check-tokens.js'
import type {ReferenceTokens} from '../../../src/core/e2e/reference-run.js'
import {topCandidates} from '../../../src/core/e2e/reference-run.js'
import type {RequestRecord} from '../../../src/core/e2e/scheduler.js'

const test = suite('e2e/check-tokens')

const ref: ReferenceTokens = {
  tokens: [5, 6, 7],
  runnerUp: [1, 2, 3],
  margin: [2, 1e-6, 0.5],
  scale: [10, 10, 10],
  contenders: [
    {tokens: [1, 8, 9], gaps: [2, 3, 4]},
    {tokens: [2, 11, 12], gaps: [1e-6, 5e-3, 6]},
    {tokens: [3, 4, 0], gaps: [0.5, 0.6, 0.7]},
  ],
}
const record = (id: string, tokens: number[]): RequestRecord => ({id, adapter: 'ad', arrivalMs: 0, promptTokens: 1, tokens, times: []})
const reference = new Map([['a', ref]])

test('equal tokens pass', () => {
  assert.equal(checkTokens([record('a', [5, 6, 7])], reference), {equal: true, exact: 1, nearTies: 0, mismatches: []})
})

test('the runner-up at a near tie (margin ≤ tolerance × max(1, |logit|)) is a near tie, not a mismatch; nothing after it is compared', () => {
  const check = checkTokens([record('a', [5, 2, 99])], reference, 1e-4)
  assert.equal(check, {equal: true, exact: 0, nearTies: 1, mismatches: []})
})

test('a contender below the runner-up is a near tie within a coarser tolerance (a peer\'s), a mismatch within the float32 one', () => {
  assert.equal(checkTokens([record('a', [5, 11, 0])], reference, 1e-4).mismatches, [{request: 'a', adapter: 'ad', position: 1, expected: 6, got: 11}])
  assert.equal(checkTokens([record('a', [5, 11, 0])], reference, 1e-3), {equal: true, exact: 0, nearTies: 1, mismatches: []})
  // a token outside the kept top four is never a near tie, whatever the tolerance
  assert.is(checkTokens([record('a', [5, 13])], reference, 1).equal, false)
})

test('another token, or the runner-up where the margin is clear, is a mismatch naming request and position', () => {
  const clear = checkTokens([record('a', [1, 6, 7])], reference)
  assert.equal(clear.mismatches, [{request: 'a', adapter: 'ad', position: 0, expected: 5, got: 1}])
  assert.is(clear.equal, false)
  const other = checkTokens([record('a', [5, 9, 7])], reference)
  assert.equal(other.mismatches[0]!.position, 1)
  assert.match(describeMismatches('gather', other), /^gather: request a \(adapter ad\) token 1: 9 where the reference has 6$/)
  const short = checkTokens([record('a', [5, 6])], reference)
  assert.equal(short.mismatches, [{request: 'a', adapter: 'ad', position: 2, expected: 7, got: -1}])
})

test('topCandidates: the k best, best first (ties to the lower index), and the largest |logit|', () => {
  assert.equal(topCandidates(Float32Array.of(0.5, 3, -7, 2.5), 2), {tokens: [1, 3], logits: [3, 2.5], scale: 7})
  assert.equal(topCandidates(Float32Array.of(4, 1), 4), {tokens: [0, 1], logits: [4, 1], scale: 4})
  assert.equal(topCandidates(Float32Array.of(1, 2, 2, 0, 5, 2), 3), {tokens: [4, 1, 2], logits: [5, 2, 2], scale: 5})
})

test.run()
