import {suite} from 'uvu'
import * as assert from 'uvu/assert'
import {distinctAdapters, drawSteps, parseWorkload, workloadName} from '../../../src/core/bench/workload.js'
import {coveringSteps} from '../../../src/core/serve/routing.js'

const test = suite('bench workloads')

const draw = (workload: string, o: {adapters?: number; batch?: number; baseFraction?: number; seed?: number; steps?: number} = {}) =>
  drawSteps({workload: parseWorkload(workload), adapters: o.adapters ?? 100, batch: o.batch ?? 16, baseFraction: o.baseFraction ?? 0, seed: o.seed ?? 1, steps: o.steps ?? 50})

test('parse: the four kinds, zipf with its exponent, and clear refusals', () => {
  assert.equal(parseWorkload('zipf:1.5'), {kind: 'zipf', alpha: 1.5})
  assert.is(workloadName(parseWorkload('zipf:0.8')), 'zipf:0.8')
  for (const k of ['distinct', 'uniform', 'identical']) assert.is(workloadName(parseWorkload(k)), k)
  for (const bad of ['zipf', 'zipf:0', 'zipf:x', 'random', '']) assert.throws(() => parseWorkload(bad), /--workload must be distinct, uniform, identical or zipf:ALPHA/)
})

test('distinct: every request of a step has its own adapter; identical: one adapter per step', () => {
  for (const s of draw('distinct')) assert.is(distinctAdapters(s), 16)
  for (const s of draw('identical')) assert.is(distinctAdapters(s), 1)
  // more requests than adapters: every adapter used, none twice more than needed
  for (const s of draw('distinct', {adapters: 5, batch: 12})) assert.is(distinctAdapters(s), 5)
})

test('slots stay in 1..N and the draw is deterministic per seed', () => {
  for (const kind of ['distinct', 'uniform', 'identical', 'zipf:1.2']) {
    const a = draw(kind)
    for (const s of a) assert.ok(Array.from(s.slots).every((v) => v >= 1 && v <= 100), kind)
    assert.equal(a.map((s) => Array.from(s.slots)), draw(kind).map((s) => Array.from(s.slots)))
    assert.not.equal(a.map((s) => Array.from(s.slots)), draw(kind, {seed: 2}).map((s) => Array.from(s.slots)))
  }
})

test('zipf is skewed: the most popular adapter takes far more than 1/N of requests, more so for larger alpha', () => {
  const top = (workload: string) => {
    const counts = new Map<number, number>()
    for (const s of draw(workload, {steps: 200})) for (const v of s.slots) counts.set(v, (counts.get(v) ?? 0) + 1)
    return Math.max(...counts.values()) / (200 * 16)
  }
  const uniform = top('uniform')
  const mild = top('zipf:0.8')
  const steep = top('zipf:1.5')
  assert.ok(uniform < 0.03, `uniform top share ${uniform}`)
  assert.ok(mild > 3 * uniform && steep > mild, `zipf top shares ${mild}, ${steep}`)
  // zipf 1.5 over 100 adapters: P(rank 1) = 1 / H(100, 1.5) ≈ 0.41
  assert.ok(Math.abs(steep - 0.41) < 0.05, `${steep}`)
})

test('base fraction: round(F·B) requests per step have slot 0', () => {
  for (const s of draw('distinct', {baseFraction: 0.25})) assert.is(Array.from(s.slots).filter((v) => v === 0).length, 4)
  for (const s of draw('uniform', {baseFraction: 1})) assert.ok(s.slots.every((v) => v === 0))
  assert.throws(() => draw('uniform', {baseFraction: 1.5}), /--base-fraction must be between 0 and 1/)
})

test('covering steps route every slot 0..N at least once', () => {
  const seen = new Set<number>()
  for (const s of coveringSteps(10, 4)) for (const v of s.slots) seen.add(v)
  assert.equal([...seen].sort((a, b) => a - b), [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10])
  assert.is(coveringSteps(10, 4).length, 3)
})

test.run()
