/**
 * The figures of a run against hand-worked cases: percentiles (linear
 * between closest ranks, as numpy's default), TTFT and ITL from token
 * times, tokens/s of prefill, decode and in all, ratios to base.
 */
import {suite} from 'uvu'
import * as assert from 'uvu/assert'
import {itlSamples, percentile, percentiles, ratiosToBase, traceMetrics, ttftSamples} from '../../../src/core/e2e/metrics.js'
import type {ServeTrace} from '../../../src/core/e2e/scheduler.js'

const test = suite('e2e/metrics')
const close = (a: number, b: number, what: string) => assert.ok(Math.abs(a - b) < 1e-9, `${what}: ${a} vs ${b}`)

test('percentiles interpolate between closest ranks (numpy.percentile linear)', () => {
  const s = [1, 2, 3, 4]
  close(percentile(s, 0.5), 2.5, 'p50') // numpy: 2.5
  close(percentile(s, 0.9), 3.7, 'p90') // (n−1)·0.9 = 2.7 → 3 + 0.7
  close(percentile(s, 0.99), 3.97, 'p99')
  close(percentile(s, 0), 1, 'p0')
  close(percentile(s, 1), 4, 'p100')
  close(percentile([7], 0.99), 7, 'one sample')
  assert.ok(Number.isNaN(percentile([], 0.5)))
  const p = percentiles([10, 0, 5, 20, 15]) // sorted 0 5 10 15 20
  assert.equal(p, {mean: 10, p50: 10, p90: 18, p99: 19.8, samples: 5})
  assert.throws(() => percentile(s, 1.5), /q must be in 0…1/)
})

/** The hand-worked run of the scheduler test: A (2 prompt tokens, 3 generated, arrives at 0), B (3, 2, at 12 ms). */
const TRACE: ServeTrace = {
  requests: [
    {id: 'A', adapter: null, arrivalMs: 0, promptTokens: 2, tokens: [1, 2, 3], times: [12, 17, 35]},
    {id: 'B', adapter: 'x', arrivalMs: 12, promptTokens: 3, tokens: [4, 5], times: [30, 35]},
  ],
  calls: [
    {kind: 'prefill', rows: 1, tokens: 2, adapters: 1, ms: 12, endMs: 12},
    {kind: 'decode', rows: 1, tokens: 1, adapters: 1, ms: 5, endMs: 17},
    {kind: 'prefill', rows: 1, tokens: 3, adapters: 1, ms: 13, endMs: 30},
    {kind: 'decode', rows: 2, tokens: 2, adapters: 2, ms: 5, endMs: 35},
  ],
  makespanMs: 35,
  peakKvBytes: 0,
  peakReservedBytes: 0,
  peakRows: 2,
}

test('TTFT is first token − arrival; ITL the gaps between a request\'s tokens', () => {
  assert.equal(ttftSamples(TRACE), [12, 18])
  assert.equal(itlSamples(TRACE), [5, 18, 5])
})

test('tokens/s: prompt tokens over prefill time, decode tokens over decode time, all generated over the makespan', () => {
  const m = traceMetrics(TRACE)
  close(m.tokens_per_s.prefill, 5 / 0.025, 'prefill') // 5 prompt tokens in 25 ms
  close(m.tokens_per_s.decode, 3 / 0.01, 'decode') // 3 tokens in 10 ms
  close(m.tokens_per_s.total, 5 / 0.035, 'total') // 5 tokens in 35 ms
  assert.is(m.ttft_ms.p50, 15)
  assert.is(m.itl_ms.p50, 5)
  close(m.itl_ms.mean, 28 / 3, 'itl mean')
  assert.equal([m.prefill_calls, m.decode_calls, m.mean_decode_batch, m.generated_tokens, m.prompt_tokens], [2, 2, 1.5, 5, 5])
  close(m.makespan_s, 0.035, 'makespan')
})

test('ratios to base: throughputs and latencies over the base\'s', () => {
  const base = traceMetrics(TRACE)
  const slower: ServeTrace = {...TRACE, calls: TRACE.calls.map((c) => ({...c, ms: c.ms * 2})), requests: TRACE.requests.map((r) => ({...r, times: r.times.map((t) => t * 2)})), makespanMs: 70}
  const r = ratiosToBase(traceMetrics(slower), base)
  close(r.prefill_tokens_per_s, 0.5, 'prefill')
  close(r.decode_tokens_per_s, 0.5, 'decode')
  close(r.total_tokens_per_s, 0.5, 'total')
  close(r.itl_p50, 2, 'itl p50') // gaps 10, 36, 10 against 5, 18, 5
  close(r.itl_p99, 2, 'itl p99')
  close(r.ttft_p50, (24 + 48) / 2 / 15, 'ttft p50') // first tokens at 24 and 60 − 12 = 48
})

test.run()
