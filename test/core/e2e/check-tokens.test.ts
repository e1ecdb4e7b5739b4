/**
 * The token check: equal tokens pass, a different token is a mismatch
 * naming the request and position, and the runner-up chosen where the
 * reference's two best logits are within the tie tolerance is a near tie.
 */
import {suite} from 'uvu'
import * as assert from 'uvu/assert'
import {checkTokens, describeMismatches} from '../../../src/core/e2e/check-tokens.js'
import type {ReferenceTokens} from '../../../src/core/e2e/reference-run.js'
import {topTwo} from '../../../src/core/e2e/reference-run.js'
import type {RequestRecord} from '../../../src/core/e2e/scheduler.js'

const test = suite('e2e/check-tokens')

const ref: ReferenceTokens = {tokens: [5, 6, 7], runnerUp: [1, 2, 3], margin: [2, 1e-6, 0.5], scale: [10, 10, 10]}
const record = (id: string, tokens: number[]): RequestRecord => ({id, adapter: 'ad', arrivalMs: 0, promptTokens: 1, tokens, times: []})
const reference = new Map([['a', ref]])

test('equal tokens pass', () => {
  assert.equal(checkTokens([record('a', [5, 6, 7])], reference), {equal: true, nearTies: 0, mismatches: []})
})

test('the runner-up at a near tie (margin ≤ tolerance × max(1, |logit|)) is a near tie, not a mismatch; nothing after it is compared', () => {
  const check = checkTokens([record('a', [5, 2, 99])], reference, 1e-4)
  assert.equal(check, {equal: true, nearTies: 1, mismatches: []})
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

test('topTwo: best, second, their margin and the largest |logit|', () => {
  assert.equal(topTwo(Float32Array.of(0.5, 3, -7, 2.5)), {best: 1, second: 3, margin: 0.5, scale: 7})
  assert.equal(topTwo(Float32Array.of(4, 1)), {best: 0, second: 1, margin: 3, scale: 4})
})

test.run()
