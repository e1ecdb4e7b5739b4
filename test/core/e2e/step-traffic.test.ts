/**
 * Bytes a decode step moves, worked by hand for a small decoder: weights
 * (f32 and q4), the KV cache, and each strategy's adapter traffic.
 */
import {suite} from 'uvu'
import * as assert from 'uvu/assert'
import {TrafficInput, decodeTraffic, weightBytes} from '../../../src/core/e2e/step-traffic.js'
import {E2E_STRATEGIES} from '../../../src/core/e2e/strategies.js'

const test = suite('e2e/step-traffic')
const config = {hidden: 64, intermediate: 128, layers: 1, heads: 4, kvHeads: 2, headDim: 16, vocab: 100}
const input: TrafficInput = {config, baseDtype: 'f32', rows: 2, context: 10, distinct: 1, slots: 5, adapterBytes: 1000, sharedABytes: 400, sharedBBytes: 50}

test('weights: every linear weight once (4 bytes a value; q4: 4 bits + an f32 scale per 32 = 0.625 bytes)', () => {
  // q 64×64, k and v 32×64, o 64×64, gate and up 128×64, down 64×128: 36864 values; head 100×64 = 6400
  assert.is(weightBytes(config, 'f32'), 4 * (36864 + 6400))
  assert.is(weightBytes(config, 'q4'), 0.625 * (36864 + 6400))
})

test('the KV cache: 3 × rows × past positions × 2·layers·kvHeads·headDim·4 bytes', () => {
  assert.is(decodeTraffic('base', input)!.kvCache, 3 * 2 * 10 * 256)
})

test('adapters: per request (gather, shared-b), per distinct adapter (segment), every slot (mask), none (base, merged)', () => {
  const a = (s: string) => decodeTraffic(s, input)!.adapters
  assert.equal([a('base'), a('gather'), a('segment'), a('shared-b'), a('mask'), a('merged')], [0, 6000, 3000, 2450, 5000, 0])
  const t = decodeTraffic('gather', input)!
  assert.is(t.total, t.weights + t.kvCache + t.adapters)
})

test('the llama.cpp peer: GGUF weights as stored (F16 2 bytes, Q4_0 18 per 32), its f16 KV cache read once, one adapter\'s F16 factors', () => {
  const f16 = decodeTraffic('llama.cpp', {...input, baseDtype: 'f16'})!
  assert.equal(f16, {weights: 2 * (36864 + 6400), kvCache: 2 * 10 * 64 * 2, adapters: 500, total: 2 * (36864 + 6400) + 2560 + 500})
  assert.is(decodeTraffic('llama.cpp-base', {...input, baseDtype: 'q4'})!.weights, (18 / 32) * (36864 + 6400))
  assert.is(decodeTraffic('llama.cpp-base', input)!.adapters, 0)
})

test('every strategy of the end-to-end table has a traffic model', () => {
  for (const s of E2E_STRATEGIES) assert.ok(decodeTraffic(s, input), s)
  assert.is(decodeTraffic('nope', input), undefined)
})

test.run()
