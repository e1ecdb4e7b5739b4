import {suite} from 'uvu'
import * as assert from 'uvu/assert'
import type {BenchReport, BenchResult} from '../../../src/core/bench/report.js'
import {bestOf, crossover, describeCrossover, rankPaddingBytes} from '../../../src/core/bench/serve-summary.js'

const test = suite('bench:serve summary')

function result(strategy: string, adapters: number, tokens: number, relative = tokens / 1000): BenchResult {
  return {strategy, adapters, tokens_per_s: tokens, latency_ms: {mean: 1, p50: 1, p99: 1}, relative_to_base: relative, weight_bytes: 0, max_abs_error: 0, samples: 1}
}

test('bestOf: the listed strategy with the highest relative_to_base; base and unlisted ones never win', () => {
  const report = {config: {}, results: [result('base', 10, 1000, 1), result('gather', 10, 930), result('segment', 10, 950), result('shared-b', 10, 940), result('mask', 10, 990)]} as unknown as BenchReport
  assert.is(bestOf(report, ['gather', 'segment', 'shared-b'])!.strategy, 'segment')
  assert.is(bestOf(report, ['gather'])!.strategy, 'gather')
  assert.is(bestOf(report, ['merged']), undefined)
})

test('crossover: the first count behind, interpolated in log-log between the counts around it', () => {
  const gather = [1, 4, 16].map((n) => result('gather', n, 1000))
  // mask: 2× gather at 1, ½× at 4: log ratio +ln2 → −ln2, so it crosses halfway in log(adapters): at 2
  const between = crossover([...gather, result('mask', 1, 2000), result('mask', 4, 500), result('mask', 16, 100)], 'mask', 'gather')
  assert.equal({...between, at: 0}, {kind: 'between', from: 1, to: 4, at: 0})
  assert.ok(between.kind === 'between' && Math.abs(between.at - 2) < 1e-12)
  assert.match(describeCrossover(between, 'mask', 'gather'), /^mask falls behind gather between 1 and 4 adapters \(≈ 2 by log interpolation\)$/)
  assert.equal(crossover([...gather, ...[1, 4, 16].map((n) => result('mask', n, 999))], 'mask', 'gather'), {kind: 'always', from: 1})
  // equal throughput is not behind
  assert.equal(crossover([...gather, ...[1, 4, 16].map((n) => result('mask', n, 1000))], 'mask', 'gather'), {kind: 'never', upTo: 16})
  assert.throws(() => crossover(gather, 'mask', 'gather'), /share no adapter count/)
})

test('rankPaddingBytes: Σ(R − r_i) rank columns of the stacks, hand-worked', () => {
  // ranks 8/16/64 over 3 adapters: Σr = 88, R = 64, S = 4 slots; 100 bytes per rank column per slot
  const p = rankPaddingBytes(4 * 64 * 100, [8, 16, 64], 3)
  assert.equal(p, {bytes: (3 * 64 - 88) * 100, share: ((3 * 64 - 88) * 100) / (4 * 64 * 100), meanRank: 88 / 3})
  assert.equal(rankPaddingBytes(1000, [16], 9).bytes, 0)
  // 1000 adapters in turn: 334 × 8, 333 × 16, 333 × 64
  assert.is(rankPaddingBytes(1001 * 64, [8, 16, 64], 1000).bytes, 1000 * 64 - (334 * 8 + 333 * 16 + 333 * 64))
})

test.run()
