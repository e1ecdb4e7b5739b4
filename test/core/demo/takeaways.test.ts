import {suite} from 'uvu'
import * as assert from 'uvu/assert'
import type {BenchStep} from '../../../src/core/demo/step-bench.js'
import type {MergeStep} from '../../../src/core/demo/step-merge.js'
import {benchTakeaway, mergeTakeaway} from '../../../src/core/demo/takeaways.js'
import type {Figures} from '../../../src/core/merge/quality.js'

const test = suite('demo takeaways')

const fig = (weight_rel_error: number, delta_snr: number, adapter_retained: number): Figures => ({weight_rel_error, delta_snr, adapter_retained})

function mergeStep(totals: Record<string, Figures>): MergeStep {
  return {
    adapter: {name: 'adapter-0002', path: '/x/adapter-0002', r: 32},
    runs: [{scheme: 'nf4', result: {report: {totals}} as unknown as MergeStep['runs'][number]['result']}],
    seconds: 1,
  }
}

test('merge: the most and least accurate strategy, with the gap; the share of the adapter kept when positive', () => {
  const t = mergeTakeaway(mergeStep({merge_then_quantize: fig(0.01, 4, 0.8), quantized_base_unmerged: fig(0.02, 2, 0.6), requantize: fig(0.015, 3, 0.7)}))
  assert.is(t, 'adapter-0002 (r = 32) merged; nf4: (a) is most accurate (weight error 0.0100), (b) least (0.0200, +100%); (a) keeps 80% of the adapter\'s effect')
})

test('merge: when no strategy keeps the adapter, the SNR and retained ranges say why', () => {
  const t = mergeTakeaway(mergeStep({merge_then_quantize: fig(0.09, 0.5, -0.9), quantized_base_unmerged: fig(0.08, 0.6, -0.7), requantize: fig(0.1, 1.2, -1.1)}))
  assert.ok(t.endsWith('nf4: (b) is most accurate (weight error 0.0800), (c) least (0.1000, +25%); the rounding error is larger than the adapter\'s own change in some (delta SNR 0.50 to 1.20), so none keeps the adapter\'s effect (adapter retained -1.10 to -0.70)'), t)
})

test('bench: ratios at the largest count, best first, and the fastest at the smallest', () => {
  const row = (strategy: string, adapters: number, relative_to_base: number) => ({strategy, adapters, relative_to_base, tokens_per_s: 100 * relative_to_base, latency_ms: {mean: 1, p50: 1, p99: 1}, weight_bytes: 1, max_abs_error: 0, samples: 1})
  const step = {report: {config: {}, results: [row('base', 1, 1), row('gather', 1, 0.5), row('mask', 1, 0.9), row('base', 64, 1), row('gather', 64, 0.7), row('mask', 64, 0.3)]}} as unknown as BenchStep
  assert.is(benchTakeaway(step), 'with 64 adapters loaded: gather 0.70×, mask 0.30× the base model\'s tokens/s; with 1 adapter the fastest is mask (0.90×)')
})

test.run()
