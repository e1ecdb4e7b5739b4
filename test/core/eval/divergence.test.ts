/**
 * llama.cpp's metric set on hand-made distributions: KL(P ‖ Q) against the
 * formula in float64, perplexity and its ratio, top-1 agreement, RMS Δp,
 * percentiles interpolated as llama.cpp does, and the --max-kld gate (a
 * non-finite figure fails).
 */
import {suite} from 'uvu'
import * as assert from 'uvu/assert'
import {DivergenceAccumulator, PerplexityAccumulator, logSoftmaxInto, percentile} from '../../../src/core/eval/divergence.js'
import {kldGate, kldGateError} from '../../../src/core/eval/kld-gate.js'

const test = suite('eval/divergence')

function logProbs(logits: number[]): Float64Array {
  const out = new Float64Array(logits.length)
  logSoftmaxInto(logits, 0, logits.length, out)
  return out
}

const close = (a: number, b: number, tol = 1e-12) => assert.ok(Math.abs(a - b) <= tol, `${a} vs ${b}`)

test('log-softmax sums to one and returns the first argmax', () => {
  const out = new Float64Array(4)
  assert.is(logSoftmaxInto([9, 1, 2, 3, 3, 0], 2, 4, out), 1) // row [2, 3, 3, 0]: first of the tied maxima
  close(out.reduce((s, v) => s + Math.exp(v), 0), 1)
  close(out[0]! - out[1]!, -1)
})

test('KL, PPL ratio, top-1 and RMS Δp of two positions against the formulas', () => {
  const ref = [[2, 0, -1], [0, 1, 3]]
  const variant = [[1.5, 0.2, -1], [0, 2, 1]]
  const targets = [1, 2]
  const acc = new DivergenceAccumulator(2, 3)
  const ppl = new PerplexityAccumulator()
  ref.forEach((r, t) => {
    ppl.add(logProbs(r), targets[t]!)
    acc.add(logProbs(r), Float32Array.from([9, ...variant[t]!]), 1, targets[t]!) // the row starts at offset 1
  })
  let kl0 = 0
  let kl1 = 0
  const p0 = logProbs(ref[0]!), q0 = logProbs(variant[0]!), p1 = logProbs(ref[1]!), q1 = logProbs(variant[1]!)
  for (let v = 0; v < 3; v++) {
    kl0 += Math.exp(p0[v]!) * (p0[v]! - q0[v]!)
    kl1 += Math.exp(p1[v]!) * (p1[v]! - q1[v]!)
  }
  const f = acc.figures()
  assert.is(f.positions, 2)
  close(f.kld.mean, (kl0 + kl1) / 2, 1e-7) // the variant's logits are float32
  close(f.kld.max, Math.max(kl0, kl1), 1e-7)
  close(f.ppl, Math.exp(-(q0[1]! + q1[2]!) / 2), 1e-6)
  close(ppl.ppl, Math.exp(-(p0[1]! + p1[2]!) / 2))
  close(f.ppl_ratio, f.ppl / ppl.ppl, 1e-9)
  assert.is(f.top1_agree_pct, 50) // position 0: both 0; position 1: ref 2, variant 1
  const dp0 = Math.exp(q0[1]!) - Math.exp(p0[1]!)
  const dp1 = Math.exp(q1[2]!) - Math.exp(p1[2]!)
  close(f.rms_dp, 100 * Math.sqrt((dp0 * dp0 + dp1 * dp1) / 2), 1e-5)
})

test('a variant equal to the reference: KL 0, ratio 1, top-1 100 %, Δp 0', () => {
  const acc = new DivergenceAccumulator(1, 4)
  const logits = [0.5, -2, 3, 1]
  acc.add(logProbs(logits), Float32Array.from(logits), 0, 3)
  const f = acc.figures()
  close(f.kld.mean, 0, 1e-7)
  close(f.ppl_ratio, 1, 1e-7)
  assert.is(f.top1_agree_pct, 100)
  close(f.rms_dp, 0, 1e-5)
})

test('percentiles interpolate linearly at fraction · (n − 1), as llama.cpp', () => {
  const sorted = [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10]
  close(percentile(sorted, 0.9), 9)
  close(percentile(sorted, 0.99), 9.9)
  close(percentile([1, 3], 0.5), 2)
  assert.is(percentile([4], 0.99), 4)
  assert.is(percentile(sorted, 1), 10)
})

test('a NaN logit makes the figures NaN, and the gate fails on it', () => {
  const acc = new DivergenceAccumulator(2, 2)
  acc.add(logProbs([1, 0]), Float32Array.of(1, 0), 0, 0)
  acc.add(logProbs([1, 0]), Float32Array.of(NaN, 0), 0, 0)
  const f = acc.figures()
  assert.ok(Number.isNaN(f.kld.mean) && Number.isNaN(f.kld.max))
  const gate = kldGate([{variant: 'broken', gated: true, kld: f.kld}], 100)
  assert.is(gate.passed, false)
  assert.match(kldGateError(gate).message, /broken, mean KL NaN/)
})

test('the gate: above fails, at or below passes, ungated variants never count', () => {
  const variants = [
    {variant: 'base', gated: false, kld: {mean: 0.5}},
    {variant: 'merged:f16', gated: true, kld: {mean: 1e-6}},
    {variant: 'merge-then-quantize:q4_0', gated: true, kld: {mean: 0.1}},
  ]
  assert.equal(kldGate(variants, 0.1), {max_kld: 0.1, passed: true, failing: []})
  const failed = kldGate(variants, 0.05)
  assert.equal(failed.failing, [{variant: 'merge-then-quantize:q4_0', kld_mean: 0.1}])
  const err = kldGateError(failed)
  assert.equal([err.code, err.exitCode], ['MAX_KLD_EXCEEDED', 1])
  assert.match(err.message, /--max-kld 0.05: 1 variant exceeds it \(worst: merge-then-quantize:q4_0, mean KL 0.100000 nats\)/)
})

test.run()
