/**
 * Interleaved timing: strategies take turns, a few steps each per round,
 * the order rotating every round, so that a noisy neighbour slows them all
 * alike. Each turn is a tinybench run (warm-up in the first round only);
 * the samples of all rounds are pooled per strategy.
 */
import {Bench} from 'tinybench'
import type {ProgressCallback} from '../progress.js'
import type {RoutingStep} from '../serve/routing.js'
import type {Executor} from '../serve/strategy.js'

export interface TimingOptions {
  /** Rounds of turns. */
  rounds: number
  /** Timed steps per strategy per round. */
  stepsPerRound: number
  /** tinybench warm-up steps per strategy, in the first round. */
  warmupSteps: number
  /** A strategy that has used this much time (ms) and has `minSamples` stops taking turns (merged can be 100× slower). */
  budgetMs: number
  minSamples: number
  /**
   * `wall` (default): elapsed time. `cpu`: the process's CPU time (all its threads), which a
   * busy neighbour disturbs less: for comparing graphs on a shared machine, not for latency.
   */
  clock?: 'wall' | 'cpu'
  /** A clock in milliseconds that replaces `clock` (tests pass a fake one that steps advance by hand). */
  now?: () => number
  onProgress?: ProgressCallback
}

/** Milliseconds of CPU time (user + system) used by this process so far. */
export function cpuClock(): number {
  const u = process.cpuUsage()
  return (u.user + u.system) / 1000
}

export interface LatencyStats {
  mean: number
  p50: number
  p99: number
  samples: number
}

/** Latency samples (ms per step) of every executor, keyed by strategy. */
export async function timeInterleaved(executors: readonly Executor[], steps: readonly RoutingStep[], x: Float32Array, o: TimingOptions): Promise<Map<string, number[]>> {
  const samples = new Map<string, number[]>(executors.map((e) => [e.label, []]))
  const spent = new Map<string, number>(executors.map((e) => [e.label, 0]))
  const next = new Map<string, number>(executors.map((e) => [e.label, 0]))
  for (let round = 0; round < o.rounds; round++) {
    for (let i = 0; i < executors.length; i++) {
      const e = executors[(i + round) % executors.length]!
      const mine = samples.get(e.label)!
      if (spent.get(e.label)! >= o.budgetMs && mine.length >= o.minSamples) continue
      const now = o.now ?? (o.clock === 'cpu' ? cpuClock : undefined)
      const bench = new Bench({...(now ? {now} : {}), time: 0, iterations: o.stepsPerRound, warmup: round === 0 && o.warmupSteps > 0, warmupIterations: o.warmupSteps, warmupTime: 0, throws: true})
      bench.add(e.label, async () => {
        const k = next.get(e.label)!
        next.set(e.label, k + 1)
        await e.run(steps[k % steps.length]!, x)
      })
      await bench.run()
      const task = bench.tasks[0]!
      const latencies = (task.result as unknown as {latency?: {samples: number[]}; samples?: number[]} | undefined)?.latency?.samples ?? []
      mine.push(...latencies)
      spent.set(e.label, spent.get(e.label)! + latencies.reduce((a, b) => a + b, 0))
    }
    o.onProgress?.({stage: 'timing', done: round + 1, total: o.rounds})
  }
  return samples
}

/** Mean, median and 99th percentile (nearest rank) of samples in ms. */
export function latencyStats(samples: readonly number[]): LatencyStats {
  const sorted = [...samples].sort((a, b) => a - b)
  const n = sorted.length
  if (n === 0) return {mean: NaN, p50: NaN, p99: NaN, samples: 0}
  const at = (q: number) => sorted[Math.min(n - 1, Math.max(0, Math.ceil(q * n) - 1))]!
  const mean = sorted.reduce((a, b) => a + b, 0) / n
  const p50 = n % 2 === 1 ? sorted[(n - 1) / 2]! : (sorted[n / 2 - 1]! + sorted[n / 2]!) / 2
  return {mean, p50, p99: at(0.99), samples: n}
}
