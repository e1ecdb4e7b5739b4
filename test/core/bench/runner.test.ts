import {suite} from 'uvu'
import * as assert from 'uvu/assert'
import type {Strategy} from '../../../src/core/serve/registry.js'
import type {Executor} from '../../../src/core/serve/strategy.js'
import {latencyStats, timeInterleaved} from '../../../src/core/bench/runner.js'

const test = suite('bench runner')

test('latency stats: mean, median, nearest-rank p99', () => {
  assert.equal(latencyStats([4, 1, 3, 2]), {mean: 2.5, p50: 2.5, p99: 4, samples: 4})
  const hundred = Array.from({length: 100}, (_, i) => i + 1)
  assert.equal(latencyStats(hundred), {mean: 50.5, p50: 50.5, p99: 99, samples: 100})
  assert.is(latencyStats([7]).p99, 7)
  assert.ok(Number.isNaN(latencyStats([]).mean))
})

/** A clock that only moves when a fake step says so: the test measures no real time. */
function fakeClock(): {now: () => number; advance: (ms: number) => void} {
  let t = 0
  return {now: () => t, advance: (ms) => void (t += ms)}
}

function fakeExecutor(strategy: Strategy, ms: number, log: string[], clock: {advance: (ms: number) => void}): Executor {
  return {
    strategy,
    label: strategy,
    weightBytes: 0,
    async run() {
      log.push(strategy)
      clock.advance(ms) // a step of known length
      return new Float32Array(0)
    },
    async warm() {},
    async close() {},
  }
}

test('strategies take turns, rotating the order each round; warm-up only in round one; slow ones stop at their budget', async () => {
  const log: string[] = []
  const clock = fakeClock()
  const executors = [fakeExecutor('base', 1, log, clock), fakeExecutor('gather', 2, log, clock), fakeExecutor('merged', 12, log, clock)]
  const samples = await timeInterleaved(executors, [{slots: Int32Array.of(1)}], new Float32Array(0), {rounds: 4, stepsPerRound: 2, warmupSteps: 1, budgetMs: 20, minSamples: 3, now: clock.now})
  // every sample is the step's length on the fake clock
  assert.equal(samples.get('base'), Array(8).fill(1))
  assert.equal(samples.get('gather'), Array(8).fill(2), '16 ms spent: under the 20 ms budget')
  // merged: 2 samples (24 ms) in round 1, 2 more in round 2 (under minSamples), then over budget with 4 samples
  assert.equal(samples.get('merged'), Array(4).fill(12))
  // round 1 order base, gather, merged, each with one warm-up step first; round 2 starts with gather,
  // round 3 with merged (skipped: over budget), round 4 with base again
  const turn = (s: string, n = 2) => Array(n).fill(s)
  assert.equal(log, [
    ...turn('base', 3), ...turn('gather', 3), ...turn('merged', 3),
    ...turn('gather'), ...turn('merged'), ...turn('base'),
    ...turn('base'), ...turn('gather'),
    ...turn('base'), ...turn('gather'),
  ])
})

test.run()
