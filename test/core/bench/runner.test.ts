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

function fakeExecutor(strategy: Strategy, ms: number, log: string[]): Executor {
  return {
    strategy,
    label: strategy,
    weightBytes: 0,
    async run() {
      log.push(strategy)
      const end = performance.now() + ms
      while (performance.now() < end) {
        // busy wait: a step of known length
      }
      return new Float32Array(0)
    },
    async warm() {},
    async close() {},
  }
}

test('strategies take turns, rotating the order each round; warm-up only in round one; slow ones stop at their budget', async () => {
  const log: string[] = []
  const executors = [fakeExecutor('base', 1, log), fakeExecutor('gather', 2, log), fakeExecutor('merged', 12, log)]
  const samples = await timeInterleaved(executors, [{slots: Int32Array.of(1)}], new Float32Array(0), {rounds: 4, stepsPerRound: 2, warmupSteps: 1, budgetMs: 20, minSamples: 3})
  assert.is(samples.get('base')!.length, 8)
  assert.is(samples.get('gather')!.length, 8)
  // merged: 2 samples (~24 ms) in round 1, then 2 more (under minSamples), then over budget with 4 samples
  assert.is(samples.get('merged')!.length, 4)
  const base = latencyStats(samples.get('base')!)
  const gather = latencyStats(samples.get('gather')!)
  assert.ok(gather.p50 > base.p50, 'a longer step measures longer')
  // round 1 order base, gather, merged (each with one warm-up step first); round 2 starts with gather
  assert.equal(log.slice(0, 9), ['base', 'base', 'base', 'gather', 'gather', 'gather', 'merged', 'merged', 'merged'])
  assert.equal(log.slice(9, 13), ['gather', 'gather', 'merged', 'merged'])
})

test.run()
