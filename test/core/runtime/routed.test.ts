/**
 * Per-request adapters through the serving strategies (serve/ strategy
 * table): a batch whose rows ask for different adapters of a lora-pack (or
 * none) gives each row the logits of its adapter applied alone, in prefill
 * and in decode, for every strategy that routes a pack's stacks.
 */
import {join} from 'node:path'
import {suite} from 'uvu'
import * as assert from 'uvu/assert'
import {STORIES, storiesMissing, relativeDiff} from '../../helpers/decoder-fixtures.js'
import {rejection, skipIf, tempDir} from '../../helpers/index.js'
import {packAdapters} from '../../../src/core/pack/pack-adapters.js'
import {AdapterRef, loadDecoder} from '../../../src/core/runtime/load-decoder.js'
import {routedStrategies} from '../../../src/core/runtime/routed-deltas.js'

const missing = storiesMissing()
const have = missing === undefined
const test = suite('runtime/routed (stories260K)')
const real = skipIf(test, missing)
const tmp = tempDir('lora-runtime-routed-')
test.after(() => tmp.cleanup())

const V = 512
const ROWS = [[1, 403, 407, 261, 378, 432, 383], [1, 300, 301, 302], [1, 403, 407, 261, 378]]
const NEXT = [286, 303, 432]
const WANT = ['lora_medium', null, 'lora_small'] as const
let pack = ''

/** Each row alone, with its adapter applied unmerged (or none): prefill logits of every position, then one decode step. */
async function alone(adapter: string | null, row: number[], next: number): Promise<{prefill: Float32Array; step: Float32Array}> {
  const refs: AdapterRef[] = adapter ? [{path: join(STORIES, 'adapters', adapter)}] : []
  const loaded = await loadDecoder({base: join(STORIES, 'hf'), adapters: refs})
  try {
    const [full] = await loaded.model.sequenceLogits([[...row, next]])
    return {prefill: full!.subarray(0, row.length * V), step: full!.subarray(row.length * V)}
  } finally {
    await loaded.close()
  }
}

test.before(async () => {
  if (!have) return
  pack = join(tmp.path, 'stories.safetensors')
  await packAdapters({inputs: [join(STORIES, 'adapters/lora_small'), join(STORIES, 'adapters/lora_medium')], out: pack})
})

real('the routed strategies of the table include gather, segment and mask', () => {
  for (const s of ['gather', 'segment', 'mask']) assert.ok(routedStrategies().includes(s), s)
})

real('each row of a mixed batch gets its own adapter, in prefill and decode, for every routed strategy', async () => {
  const expected = await Promise.all(ROWS.map((row, i) => alone(WANT[i]!, row, NEXT[i]!)))
  for (const strategy of routedStrategies()) {
    const loaded = await loadDecoder({base: join(STORIES, 'hf'), routed: {pack, strategy}})
    try {
      assert.equal(loaded.routedAdapters, ['lora_small', 'lora_medium'])
      const prefill = await loaded.model.forward({tokens: ROWS, logits: 'all', adapters: [...WANT]})
      prefill.logits.forEach((l, i) => assert.ok(relativeDiff(l, expected[i]!.prefill) < 1e-5, `${strategy} prefill row ${i}: ${relativeDiff(l, expected[i]!.prefill)}`))
      const step = await loaded.model.forward({tokens: NEXT.map((t) => [t]), cache: prefill.cache, adapters: [...WANT]})
      step.logits.forEach((l, i) => assert.ok(relativeDiff(l, expected[i]!.step) < 1e-5, `${strategy} decode row ${i}`))
    } finally {
      await loaded.close()
    }
  }
})

real('routed stacks in an ONNX external data file serve the same', async () => {
  const [inline, external] = await Promise.all([false, true].map(async (externalData) => {
    const loaded = await loadDecoder({base: join(STORIES, 'hf'), routed: {pack, strategy: 'gather'}, externalData})
    try {
      return (await loaded.model.forward({tokens: ROWS, logits: 'all', adapters: [...WANT]})).logits
    } finally {
      await loaded.close()
    }
  }))
  inline!.forEach((l, i) => assert.ok(relativeDiff(external![i]!, l) < 1e-6))
})

real('unknown adapters, strategies that cannot route a pack, and mixed options are usage errors', async () => {
  const loaded = await loadDecoder({base: join(STORIES, 'hf'), routed: {pack, strategy: 'gather'}})
  try {
    const err = await rejection(loaded.model.forward({tokens: [[1, 2]], adapters: ['lora_large']}))
    assert.is(err.code, 'RUNTIME_NO_SUCH_ADAPTER')
    assert.match(err.message, /holds 2: lora_small, lora_medium/)
  } finally {
    await loaded.close()
  }
  for (const strategy of ['shared-b', 'merged', 'base', 'nope']) assert.is((await rejection(loadDecoder({base: join(STORIES, 'hf'), routed: {pack, strategy}}))).code, 'RUNTIME_STRATEGY', strategy)
  const both = await rejection(loadDecoder({base: join(STORIES, 'hf'), routed: {pack, strategy: 'gather'}, adapters: [{path: join(STORIES, 'adapters/lora_small')}]}))
  assert.is(both.code, 'RUNTIME_ROUTED_AND_ADAPTERS')
})

test.run()
