/**
 * Adapters in the runtime, on stories260K's real adapter fixtures: applied
 * unmerged (one, or two with weights), merged, taken out of a lora-pack, on
 * the GGUF base, each equal to the float64 reference with the adapters
 * merged by PEFT's rules; adapters that do not fit are refused.
 */
import {join} from 'node:path'
import {suite} from 'uvu'
import * as assert from 'uvu/assert'
import {LlamaReference, klDivergence} from '../../helpers/llama-reference.js'
import {STORIES, storiesMissing, relativeDiff, relativeError} from '../../helpers/decoder-fixtures.js'
import {REAL_ADAPTERS, realAdaptersMissing, rejection, skipIf, tempDir} from '../../helpers/index.js'
import {packAdapters} from '../../../src/core/pack/pack-adapters.js'
import {AdapterRef, loadDecoder} from '../../../src/core/runtime/load-decoder.js'

const missing = storiesMissing()
const test = suite('runtime/adapters (stories260K)')
const real = skipIf(test, missing)
const tmp = tempDir('lora-runtime-adapters-')
test.after(() => tmp.cleanup())

const IDS = [1, 403, 407, 261, 378, 432, 383, 286, 261, 315, 421, 395, 317, 426]
const V = 512
const SMALL = join(STORIES, 'adapters/lora_small')
const MEDIUM = join(STORIES, 'adapters/lora_medium')

async function runtimeLogits(base: string, adapters: AdapterRef[], merge = false): Promise<Float32Array> {
  const loaded = await loadDecoder({base, adapters, merge})
  try {
    return (await loaded.model.sequenceLogits([IDS]))[0]!
  } finally {
    await loaded.close()
  }
}

async function mergedReference(adapters: Array<[string, number]>): Promise<Float64Array[]> {
  const ref = await LlamaReference.fromHfFolder(join(STORIES, 'hf'))
  for (const [dir, w] of adapters) await ref.mergeAdapter(dir, w)
  return ref.logits(IDS)
}

real('one adapter unmerged equals the reference with the adapter merged (and differs from the base)', async () => {
  const logits = await runtimeLogits(join(STORIES, 'hf'), [{path: MEDIUM}])
  const merged = await mergedReference([[MEDIUM, 1]])
  assert.ok(relativeError(logits, merged, V) < 1e-4, `relative error ${relativeError(logits, merged, V)}`)
  const base = (await LlamaReference.fromHfFolder(join(STORIES, 'hf'))).logits(IDS)
  let kl = 0
  base.forEach((row, p) => (kl += klDivergence(row, logits.subarray(p * V, (p + 1) * V))))
  assert.ok(kl / IDS.length > 0.01, `the adapter changes the distribution (mean KL ${kl / IDS.length})`)
})

real('two weighted adapters unmerged, and the same merged, equal the reference merge', async () => {
  const refs: AdapterRef[] = [{path: SMALL, weight: 0.7}, {path: MEDIUM, weight: -0.5}]
  const merged = await mergedReference([[SMALL, 0.7], [MEDIUM, -0.5]])
  const unmerged = await runtimeLogits(join(STORIES, 'hf'), refs)
  assert.ok(relativeError(unmerged, merged, V) < 1e-4)
  const premerged = await runtimeLogits(join(STORIES, 'hf'), refs, true)
  assert.ok(relativeError(premerged, merged, V) < 1e-4)
})

real('an adapter on the GGUF base (q/k rows moved back) equals it on the HF base', async () => {
  const a = await runtimeLogits(join(STORIES, 'gguf/stories260K.gguf'), [{path: MEDIUM}])
  const b = await runtimeLogits(join(STORIES, 'hf'), [{path: MEDIUM}])
  assert.ok(relativeDiff(a, b) < 1e-5)
})

real('an adapter taken out of a lora-pack equals the same adapter read from its folder', async () => {
  const pack = join(tmp.path, 'stories.safetensors')
  await packAdapters({inputs: [SMALL, MEDIUM], out: pack})
  const fromPack = await runtimeLogits(join(STORIES, 'hf'), [{pack, name: 'lora_medium'}])
  const fromFolder = await runtimeLogits(join(STORIES, 'hf'), [{path: MEDIUM}])
  assert.ok(relativeDiff(fromPack, fromFolder) < 1e-6)
  assert.is((await rejection(loadDecoder({base: join(STORIES, 'hf'), adapters: [{pack, name: 'nope'}]}))).code, 'PACK_NO_SUCH_ADAPTER')
})

const withCorpus = skipIf(test, missing ?? realAdaptersMissing())
withCorpus("an adapter for another base is refused, naming the module that does not fit", async () => {
  const err = await rejection(loadDecoder({base: join(STORIES, 'hf'), adapters: [{path: join(REAL_ADAPTERS, 'qwen2.5-0.5b-qv-r8')}]}))
  assert.is(err.code, 'ADAPTER_MODULE_MISMATCH')
  assert.is(err.exitCode, 2)
  assert.match(err.message, /q_proj|v_proj/)
})

test.run()
