/**
 * RoPE tables against the test-side reference's frequencies (transformers'
 * definitions): plain, linear and Llama 3 scaling, and a GGUF's per-dimension
 * frequency factors.
 */
import {suite} from 'uvu'
import * as assert from 'uvu/assert'
import {ropeInverseFrequencies} from '../../helpers/llama-reference.js'
import {inverseFrequencies, ropeTables} from '../../../src/core/runtime/rope.js'

const test = suite('runtime/rope')
const base = {hidden: 0, intermediate: 0, layers: 0, heads: 1, kvHeads: 1, headDim: 128, vocab: 0, rmsEps: 0, ropeTheta: 500000, tieEmbeddings: true}

test('inverse frequencies equal the reference for plain, linear and llama3 scaling', () => {
  const scalings = [null, {type: 'linear' as const, factor: 4}, {type: 'llama3' as const, factor: 8, lowFreqFactor: 1, highFreqFactor: 4, originalMaxPositions: 8192}]
  for (const s of scalings) {
    const ours = inverseFrequencies({headDim: 128, ropeTheta: 500000, ropeScaling: s, ropeFreqFactors: null})
    const ref = ropeInverseFrequencies({...base, ropeScaling: s})
    for (let i = 0; i < 64; i++) assert.ok(Math.abs(ours[i]! - ref[i]!) <= 1e-15 * ref[i]!, `${s?.type ?? 'plain'} ${i}`)
  }
})

test('a GGUF rope_freqs tensor divides each frequency', () => {
  const factors = Float32Array.from({length: 4}, (_, i) => i + 1)
  const plain = inverseFrequencies({headDim: 8, ropeTheta: 10000, ropeScaling: null, ropeFreqFactors: null})
  const scaled = inverseFrequencies({headDim: 8, ropeTheta: 10000, ropeScaling: null, ropeFreqFactors: factors})
  for (let i = 0; i < 4; i++) assert.ok(Math.abs(scaled[i]! - plain[i]! / (i + 1)) < 1e-18)
})

test('tables hold cos and sin of position × frequency', () => {
  const config = {headDim: 8, ropeTheta: 10000, ropeScaling: null, ropeFreqFactors: null}
  const {cos, sin} = ropeTables(config, 50)
  const inv = inverseFrequencies(config)
  assert.is(cos.length, 50 * 4)
  assert.ok(Math.abs(cos[37 * 4 + 2]! - Math.fround(Math.cos(37 * inv[2]!))) === 0)
  assert.ok(Math.abs(sin[49 * 4 + 0]! - Math.fround(Math.sin(49))) === 0)
  assert.is(cos[0], 1)
  assert.is(sin[3], 0)
})

test.run()
