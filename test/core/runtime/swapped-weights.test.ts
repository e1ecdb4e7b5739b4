/**
 * Weight swapping through `ProjectionDeltas.weight`: a provider that makes
 * the projections' weights graph inputs and feeds them per call gives the
 * base model's logits when fed the base weights, and the merged model's
 * when fed W + s·B·A, in the same session.
 */
import {join} from 'node:path'
import {suite} from 'uvu'
import * as assert from 'uvu/assert'
import {STORIES, relativeDiff, storiesMissing} from '../../helpers/decoder-fixtures.js'
import {skipIf} from '../../helpers/index.js'
import {loadOrt, OrtTensor} from '../../../src/core/onnx/session.js'
import {readPeftFactors} from '../../../src/core/runtime/adapter-factors.js'
import {DecoderModel} from '../../../src/core/runtime/decoder-model.js'
import {loadDecoder, openDecoderWeights} from '../../../src/core/runtime/load-decoder.js'
import {linearValues} from '../../../src/core/runtime/linear-weight.js'
import type {ProjectionDeltas} from '../../../src/core/runtime/projection-delta.js'

const test = suite('runtime/swapped-weights (stories260K)')
const real = skipIf(test, storiesMissing())
const TOKENS = [[1, 403, 407, 261, 378, 432, 383]]

real('fed the base weights the session gives the base logits; fed merged weights, the merged model\'s', async () => {
  const ort = await loadOrt()
  const adapter = await readPeftFactors(join(STORIES, 'adapters/lora_small'))
  const weights = await openDecoderWeights(join(STORIES, 'hf'))
  const modules = [...adapter.modules.keys()]
  const baseFeeds: Record<string, OrtTensor> = {}
  const mergedFeeds: Record<string, OrtTensor> = {}
  for (const name of modules) {
    const w = await weights.linear(`${name}.weight`)
    const values = linearValues(w)
    const m = adapter.modules.get(name)!
    const base = new Float32Array(w.in * w.out)
    const merged = new Float32Array(w.in * w.out)
    for (let o = 0; o < w.out; o++)
      for (let i = 0; i < w.in; i++) {
        let d = 0
        for (let k = 0; k < m.r; k++) d += m.b[o * m.r + k]! * m.a[k * w.in + i]!
        base[i * w.out + o] = values[o * w.in + i]!
        merged[i * w.out + o] = values[o * w.in + i]! + m.scaling * d
      }
    baseFeeds[`W:${name}`] = new ort.Tensor('float32', base, [w.in, w.out])
    mergedFeeds[`W:${name}`] = new ort.Tensor('float32', merged, [w.in, w.out])
  }
  let current = baseFeeds
  const swapped: ProjectionDeltas = {
    description: 'swapped weights',
    declareInputs: (g) => modules.forEach((name) => g.input(`W:${name}`, 'float32', [adapter.modules.get(name)!.in, adapter.modules.get(name)!.out])),
    weight: (_ctx, site) => (modules.includes(site.module) ? `W:${site.module}` : undefined),
    delta: async () => undefined,
    feeds: async () => current,
  }
  const model = await DecoderModel.create({weights, deltas: swapped})
  const plain = await loadDecoder({base: join(STORIES, 'hf')})
  const mergedModel = await loadDecoder({base: join(STORIES, 'hf'), adapters: [{path: join(STORIES, 'adapters/lora_small')}], merge: true})
  try {
    assert.is(model.summary.floatWeights, plain.model.summary.floatWeights - modules.length)
    const a = (await model.forward({tokens: TOKENS, logits: 'all'})).logits[0]!
    assert.ok(relativeDiff(a, (await plain.model.forward({tokens: TOKENS, logits: 'all'})).logits[0]!) < 1e-6)
    current = mergedFeeds
    const b = (await model.forward({tokens: TOKENS, logits: 'all'})).logits[0]!
    const expected = (await mergedModel.model.forward({tokens: TOKENS, logits: 'all'})).logits[0]!
    assert.ok(relativeDiff(b, expected) < 1e-5, `merged: ${relativeDiff(b, expected)}`)
    assert.ok(relativeDiff(a, b) > 1e-3, 'the adapter changes the logits')
  } finally {
    await model.release()
    await plain.close()
    await mergedModel.close()
    await weights.close()
  }
})

test.run()
