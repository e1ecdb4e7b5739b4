/**
 * The continuous-batching scheduler on a fake engine and a fake clock (a
 * cost per call: prefill 10 ms + 1 ms per prompt token, decode 5 ms): when
 * requests join and leave, the batch and KV limits, one adapter at a time
 * under `per-adapter`, every request's tokens equal to decoding it alone,
 * and its clock worked by hand.
 */
import {suite} from 'uvu'
import * as assert from 'uvu/assert'
import {costTimer} from '../../../src/core/e2e/batch-engine.js'
import {Scheduler, SchedulerOptions, serveInterleaved} from '../../../src/core/e2e/scheduler.js'
import type {E2eRequest} from '../../../src/core/e2e/requests.js'
import {rejection} from '../../helpers/index.js'
import {FakeEngine, alone, request} from './fake-engine.js'

const test = suite('e2e/scheduler')

const clock = costTimer((c) => (c.kind === 'prefill' ? 10 + c.tokens : 5))

function scheduler(requests: readonly E2eRequest[], o: Partial<SchedulerOptions<number[][]>> = {}): {s: Scheduler<number[][]>; engine: FakeEngine} {
  const engine = (o.engine as FakeEngine | undefined) ?? new FakeEngine()
  return {s: new Scheduler({engine, requests, maxBatch: 4, kvBytesPerToken: 1, policy: 'mixed', timer: clock, ...o}), engine}
}

test('the clock, worked by hand: B joins between A\'s decode steps; TTFT and token times', async () => {
  const A = request('A', [1, 2], 3)
  const B = request('B', [3, 4, 5], 2, 'x', 0.012)
  const {s} = scheduler([A, B])
  const trace = await s.run()
  // 0: A prefill (10 + 2) → 12, A decode → 17; B arrived at 12: B prefill (10 + 3) → 30; decode A and B → 35
  assert.equal(trace.calls.map((c) => [c.kind, c.rows, c.tokens, c.ms, c.endMs]), [
    ['prefill', 1, 2, 12, 12],
    ['decode', 1, 1, 5, 17],
    ['prefill', 1, 3, 13, 30],
    ['decode', 2, 2, 5, 35],
  ])
  assert.equal(trace.requests.map((r) => r.times), [[12, 17, 35], [30, 35]])
  assert.equal(trace.requests[1]!.arrivalMs, 12)
  assert.is(trace.makespanMs, 35)
  assert.is(s.generatedTokens, 5)
  assert.is(s.clock, 35)
})

test('an idle scheduler jumps to the next arrival instead of waiting', async () => {
  const {s} = scheduler([request('A', [1], 1), request('C', [2], 1, null, 1.0)])
  const trace = await s.run()
  assert.equal(trace.requests.map((r) => r.times), [[11], [1011]])
  assert.equal(trace.calls.map((c) => c.kind), ['prefill', 'prefill'])
})

test('requests join between decode steps and leave when done; every request gets the tokens it gets alone', async () => {
  const requests = [request('a', [5, 6, 7], 6, 'p'), request('b', [1], 2, 'q', 0.004), request('c', [2, 2], 4, null, 0.02), request('d', [9, 8, 7, 6], 3, 'p', 0.021), request('e', [4], 5, 'q', 0.2)]
  const {s, engine} = scheduler(requests)
  const trace = await s.run()
  trace.requests.forEach((r, i) => assert.equal(r.tokens, alone(requests[i]!), r.id))
  // rows per decode call rise as requests join and fall as they leave
  const rows = trace.calls.filter((c) => c.kind === 'decode').map((c) => c.rows)
  assert.ok(Math.max(...rows) >= 3, `rows per decode: ${rows}`)
  assert.is(rows.at(-1), 1)
  assert.is(engine.calls.filter((c) => c.kind === 'prefill').length, 4) // c and d arrive while a is decoding and are admitted together
})

test('at most --max-batch requests run; the others wait and join as rows leave', async () => {
  const requests = Array.from({length: 5}, (_, i) => request(`r${i}`, [i, i + 1], 2 + i))
  const {s} = scheduler(requests, {maxBatch: 2})
  const trace = await s.run()
  assert.is(trace.peakRows, 2)
  for (const c of trace.calls) assert.ok(c.rows <= 2)
  trace.requests.forEach((r, i) => assert.equal(r.tokens, alone(requests[i]!)))
})

test('the KV budget bounds the reservations of the running batch (prompt + max tokens per request)', async () => {
  const requests = Array.from({length: 4}, (_, i) => request(`r${i}`, [i, 1], 3)) // 5 positions each
  const {s} = scheduler(requests, {kvBudgetBytes: 10})
  const trace = await s.run()
  assert.is(trace.peakRows, 2)
  assert.is(trace.peakReservedBytes, 10)
  trace.requests.forEach((r, i) => assert.equal(r.tokens, alone(requests[i]!)))
})

test('a request that alone exceeds the KV budget is refused before serving', async () => {
  const err = await rejection(Promise.resolve().then(() => scheduler([request('big', [1, 2, 3], 9)], {kvBudgetBytes: 11})))
  assert.is(err.code, 'KV_BUDGET_TOO_SMALL')
  assert.match(err.message, /request big needs 12 bytes of KV cache \(12 positions\), more than the KV budget of 11 bytes/)
})

test('per-adapter: every call serves one adapter, groups in order of first arrival, tokens unchanged', async () => {
  const requests = [request('a1', [1], 3, 'a'), request('b1', [2], 2, 'b'), request('a2', [3], 2, 'a'), request('b2', [4], 4, 'b'), request('n', [5], 2, null)]
  const {s, engine} = scheduler(requests, {policy: 'per-adapter'})
  const trace = await s.run()
  for (const c of engine.calls) assert.is(new Set(c.adapters).size, 1, JSON.stringify(c))
  assert.equal(
    engine.calls.filter((c) => c.kind === 'prefill').map((c) => c.adapters),
    [['a', 'a'], ['b', 'b'], [null]],
  )
  trace.requests.forEach((r, i) => assert.equal(r.tokens, alone(requests[i]!)))
})

test('interleaved schedulers each count only their own calls', async () => {
  const requests = [request('a', [1, 2], 3), request('b', [3], 2)]
  const fast = new Scheduler({engine: new FakeEngine(), requests, maxBatch: 4, kvBytesPerToken: 1, policy: 'mixed', timer: costTimer(() => 1)})
  const slow = new Scheduler({engine: new FakeEngine(), requests, maxBatch: 4, kvBytesPerToken: 1, policy: 'mixed', timer: costTimer(() => 100)})
  await serveInterleaved([fast, slow])
  assert.is(fast.trace().makespanMs * 100, slow.trace().makespanMs)
  assert.equal(fast.trace().requests.map((r) => r.tokens), slow.trace().requests.map((r) => r.tokens))
})

test('repeated request ids and a batch below 1 are usage errors', async () => {
  assert.is((await rejection(Promise.resolve().then(() => scheduler([request('x', [1], 1), request('x', [2], 1)])))).code, 'BAD_WORKLOAD')
  assert.is((await rejection(Promise.resolve().then(() => scheduler([request('x', [1], 1)], {maxBatch: 0})))).code, 'BAD_FLAG')
})

test.run()
