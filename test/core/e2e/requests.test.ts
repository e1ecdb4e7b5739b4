/**
 * The requests of an end-to-end run: drawn from flags (adapters chosen as
 * `lora bench` chooses them, prompts from the seed, offline or Poisson
 * arrivals) or read from a JSONL trace, whose bad lines are refused with
 * the file and line named.
 */
import {writeFileSync} from 'node:fs'
import {join} from 'node:path'
import {suite} from 'uvu'
import * as assert from 'uvu/assert'
import {drawRequests, readTrace} from '../../../src/core/e2e/requests.js'
import {rejection, tempDir} from '../../helpers/index.js'

const test = suite('e2e/requests')
const tmp = tempDir('lora-e2e-requests-')
test.after(() => tmp.cleanup())
const NAMES = Array.from({length: 10}, (_, i) => `ad${i}`)
const base = {requests: 8, promptTokens: 5, genTokens: 3, adapters: NAMES, workload: {kind: 'distinct'} as const, arrival: {kind: 'offline'} as const, vocab: 100, seed: 4}

test('distinct: every request its own adapter; prompts of P ids in 3…vocab−1, the same for the same seed', () => {
  const r = drawRequests(base)
  assert.is(r.length, 8)
  assert.is(new Set(r.map((x) => x.adapter)).size, 8)
  for (const x of r) {
    assert.is(x.prompt.length, 5)
    assert.ok(x.prompt.every((t) => t >= 3 && t < 100))
    assert.is(x.maxTokens, 3)
    assert.is(x.arrival, 0)
  }
  assert.equal(drawRequests(base), r)
  assert.not.equal(drawRequests({...base, seed: 5}).map((x) => x.prompt), r.map((x) => x.prompt))
})

test('identical: one adapter for all; base fraction: that share of requests without adapter', () => {
  assert.is(new Set(drawRequests({...base, workload: {kind: 'identical'}}).map((x) => x.adapter)).size, 1)
  assert.is(drawRequests({...base, baseFraction: 0.5}).filter((x) => x.adapter === null).length, 4)
})

test('Poisson arrivals: the first at 0, increasing, mean gap near 1/rate', () => {
  const r = drawRequests({...base, requests: 4000, arrival: {kind: 'poisson', rate: 4}})
  assert.is(r[0]!.arrival, 0)
  for (let i = 1; i < r.length; i++) assert.ok(r[i]!.arrival > r[i - 1]!.arrival)
  const meanGap = r.at(-1)!.arrival / (r.length - 1)
  assert.ok(Math.abs(meanGap - 0.25) < 0.025, `mean gap ${meanGap}`)
})

test('a trace: counts or ids as prompts, adapters by name or null, ids, served in order of arrival', async () => {
  const path = join(tmp.path, 'trace.jsonl')
  writeFileSync(path, ['{"prompt_tokens": 4, "max_tokens": 2, "adapter": "ad3", "arrival_s": 0.5}', '', '{"prompt_tokens": [7, 8, 9], "max_tokens": 1, "adapter": null, "id": "first"}'].join('\n'))
  const r = await readTrace(path, {adapters: NAMES, vocab: 100, seed: 1})
  assert.equal(r.map((x) => [x.id, x.adapter, x.prompt.length, x.maxTokens, x.arrival]), [
    ['first', null, 3, 1, 0],
    ['r0', 'ad3', 4, 2, 0.5],
  ])
  assert.equal(r[0]!.prompt, [7, 8, 9])
})

test('bad traces are refused naming the file and line', async () => {
  const cases: Array<[string, string, RegExp]> = [
    ['{"prompt_tokens": 4, "max_tokens": 2}\nnot json', 'TRACE_BAD_LINE', /line 2: not a JSON object/],
    ['{"prompt_tokens": 4, "max_tokens": 0}', 'TRACE_BAD_LINE', /line 1: "max_tokens" must be an integer/],
    ['{"prompt_tokens": 4, "max_tokens": 2, "adapter": "nope"}', 'TRACE_UNKNOWN_ADAPTER', /line 1: adapter "nope" is not one of the 10 loaded/],
    ['{"prompt_tokens": [1, 500], "max_tokens": 2}', 'TRACE_BAD_LINE', /prompt token 500 is outside the vocabulary/],
    ['{"prompt_tokens": 2, "max_tokens": 2, "arrival_s": -1}', 'TRACE_BAD_LINE', /"arrival_s" must be a number ≥ 0/],
    ['{"prompt_tokens": 2, "max_tokens": 1, "id": "x"}\n{"prompt_tokens": 2, "max_tokens": 1, "id": "x"}', 'TRACE_BAD_LINE', /line 2: request id "x" appears twice/],
    ['\n\n', 'TRACE_EMPTY', /no requests/],
  ]
  for (const [i, [text, code, message]] of cases.entries()) {
    const path = join(tmp.path, `bad${i}.jsonl`)
    writeFileSync(path, text)
    const err = await rejection(readTrace(path, {adapters: NAMES, vocab: 100, seed: 1}))
    assert.is(err.code, code, text)
    assert.ok(err.message.startsWith(`read ${path}`), err.message)
    assert.match(err.message, message)
  }
})

test('counts below 1 and a rate that is not positive are usage errors', () => {
  assert.throws(() => drawRequests({...base, requests: 0}), /--requests must be a positive integer/)
  assert.throws(() => drawRequests({...base, arrival: {kind: 'poisson', rate: 0}}), /--rate must be a positive number/)
})

test.run()
