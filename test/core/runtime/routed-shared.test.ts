/**
 * shared-b in the decoder runtime: a source with a shared-B form routes
 * through the serve table's shared-b fragment. With an exact shared form of
 * stories260K's two adapters (U = [B₁ | B₂], A′₁ = [s₁A₁; 0], A′₂ = [0; s₂A₂]),
 * each row of a mixed batch gets the logits of its adapter applied alone,
 * in prefill and decode; a source without the form refuses shared-b.
 */
import {join} from 'node:path'
import {suite} from 'uvu'
import * as assert from 'uvu/assert'
import {STORIES, relativeDiff, storiesMissing} from '../../helpers/decoder-fixtures.js'
import {rejection, skipIf} from '../../helpers/index.js'
import {readPeftFactors} from '../../../src/core/runtime/adapter-factors.js'
import {DecoderModel} from '../../../src/core/runtime/decoder-model.js'
import {loadDecoder, openDecoderWeights} from '../../../src/core/runtime/load-decoder.js'
import {RoutedStackSource, SharedModuleStacks, routedDeltasFrom, routedStrategies} from '../../../src/core/runtime/routed-deltas.js'

const test = suite('runtime/routed-shared (stories260K)')
const real = skipIf(test, storiesMissing())
const ADAPTERS = ['lora_small', 'lora_medium']
const ROWS = [[1, 403, 407, 261, 378, 432, 383], [1, 300, 301, 302], [1, 403, 407, 261, 378]]
const NEXT = [286, 303, 432]
const WANT = ['lora_medium', null, 'lora_small'] as const
const V = 512

/** The exact shared-B form of the adapters (see the module comment). */
async function exactShared(): Promise<RoutedStackSource> {
  const factors = await Promise.all(ADAPTERS.map((a) => readPeftFactors(join(STORIES, 'adapters', a))))
  const shared = async (module: string): Promise<SharedModuleStacks | undefined> => {
    const parts = factors.map((f) => f.modules.get(module))
    const first = parts.find((p) => p !== undefined)
    if (!first) return undefined
    const {in: inDim, out} = first
    const K = parts.reduce((s, p) => s + (p?.r ?? 0), 0)
    const ak = new Float32Array((ADAPTERS.length + 1) * K * inDim)
    const bk = new Float32Array(K * out)
    let k0 = 0
    parts.forEach((p, i) => {
      if (!p) return
      for (let k = 0; k < p.r; k++) {
        for (let x = 0; x < inDim; x++) ak[((i + 1) * K + k0 + k) * inDim + x] = p.scaling * p.a[k * inDim + x]!
        for (let o = 0; o < out; o++) bk[(k0 + k) * out + o] = p.b[o * p.r + k]!
      }
      k0 += p.r
    })
    return {ak, bk, k: K, in: inDim, out}
  }
  return {adapters: ADAPTERS, source: 'exact shared form of stories260K adapters', stacks: async () => undefined, shared}
}

real('a source with a shared-B form adds shared-b to the strategies it routes', () => {
  assert.not.ok(routedStrategies().includes('shared-b'))
  assert.ok(routedStrategies({shared: true}).includes('shared-b'))
})

real('shared-b: each row of a mixed batch gets its own adapter, in prefill and decode', async () => {
  const expected: Array<{prefill: Float32Array; step: Float32Array}> = []
  for (const [i, adapter] of WANT.entries()) {
    const alone = await loadDecoder({base: join(STORIES, 'hf'), adapters: adapter ? [{path: join(STORIES, 'adapters', adapter)}] : []})
    try {
      const [full] = await alone.model.sequenceLogits([[...ROWS[i]!, NEXT[i]!]])
      expected.push({prefill: full!.subarray(0, ROWS[i]!.length * V), step: full!.subarray(ROWS[i]!.length * V)})
    } finally {
      await alone.close()
    }
  }
  const weights = await openDecoderWeights(join(STORIES, 'hf'))
  const model = await DecoderModel.create({weights, deltas: routedDeltasFrom(await exactShared(), 'shared-b')})
  try {
    const prefill = await model.forward({tokens: ROWS, logits: 'all', adapters: [...WANT]})
    prefill.logits.forEach((l, i) => assert.ok(relativeDiff(l, expected[i]!.prefill) < 1e-5, `prefill row ${i}: ${relativeDiff(l, expected[i]!.prefill)}`))
    const step = await model.forward({tokens: NEXT.map((t) => [t]), cache: prefill.cache, adapters: [...WANT]})
    step.logits.forEach((l, i) => assert.ok(relativeDiff(l, expected[i]!.step) < 1e-5, `decode row ${i}`))
  } finally {
    await model.release()
    await weights.close()
  }
})

real('a source without a shared-B form refuses shared-b, saying why', async () => {
  const source: RoutedStackSource = {adapters: ADAPTERS, source: 'a plain source', stacks: async () => undefined}
  const err = await rejection(Promise.resolve().then(() => routedDeltasFrom(source, 'shared-b')))
  assert.is(err.code, 'RUNTIME_STRATEGY')
  assert.match(err.message, /cannot route a plain source .* it serves a shared-B form, which this source lacks/)
})

test.run()
