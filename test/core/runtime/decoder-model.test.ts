/**
 * The decoder runtime on the real stories260K model (GQA: 8 query heads on
 * 4 KV heads; tied embeddings), against the test-side float64 reference:
 * logits from the Hugging Face folder and from llama.cpp's GGUF, KV-cache
 * decoding, batches of different lengths, and the greedy text of PROVENANCE.md.
 */
import {join} from 'node:path'
import {suite} from 'uvu'
import * as assert from 'uvu/assert'
import {LlamaReference, argmax} from '../../helpers/llama-reference.js'
import {STORIES, STORIES_GREEDY, storiesMissing, relativeDiff, relativeError} from '../../helpers/decoder-fixtures.js'
import {rejection, skipIf} from '../../helpers/index.js'
import {KvCache} from '../../../src/core/runtime/kv-cache.js'
import {LoadedDecoder, loadDecoder} from '../../../src/core/runtime/load-decoder.js'
import {loadTokenizer} from '../../../src/core/runtime/tokenizer.js'

const missing = storiesMissing()
const have = missing === undefined
const test = suite('runtime/decoder-model (stories260K)')
const real = skipIf(test, missing)

/** "Once upon a time, there was a little girl named" + a few more, stories260K ids with BOS. */
const IDS = [1, 403, 407, 261, 378, 432, 383, 286, 261, 315, 421, 395]
const OTHER = [1, 300, 301, 302, 303, 304, 305]
const V = 512
let reference: LlamaReference
let hf: LoadedDecoder

test.before(async () => {
  if (!have) return
  reference = await LlamaReference.fromHfFolder(join(STORIES, 'hf'))
  hf = await loadDecoder({base: join(STORIES, 'hf')})
})
test.after(async () => {
  await hf?.close()
})

real('config: GQA and tied embeddings, read from config.json', () => {
  const c = hf.model.config
  assert.equal([c.heads, c.kvHeads, c.headDim, c.tieEmbeddings, c.vocab], [8, 4, 8, true, 512])
})

real('logits from hf/ equal the float64 reference within 1e-4 relative at every position', async () => {
  const [logits] = await hf.model.sequenceLogits([IDS])
  const err = relativeError(logits!, reference.logits(IDS), V)
  assert.ok(err < 1e-4, `relative error ${err}`)
})

real('logits from gguf/ (llama.cpp names, interleaved q/k rows) equal the reference too', async () => {
  const gguf = await loadDecoder({base: join(STORIES, 'gguf/stories260K.gguf')})
  try {
    assert.is(gguf.weights.format, 'gguf')
    const [logits] = await gguf.model.sequenceLogits([IDS])
    const err = relativeError(logits!, reference.logits(IDS), V)
    assert.ok(err < 1e-4, `relative error ${err}`)
  } finally {
    await gguf.close()
  }
})

real('weights in an ONNX external data file give the same logits', async () => {
  const ext = await loadDecoder({base: join(STORIES, 'hf'), externalData: true})
  try {
    const [a] = await ext.model.sequenceLogits([IDS])
    const [b] = await hf.model.sequenceLogits([IDS])
    assert.ok(relativeDiff(a!, b!) < 1e-6)
  } finally {
    await ext.close()
  }
})

real('KV-cache decoding (prefill, then one token at a time) equals the full-sequence logits', async () => {
  const [full] = await hf.model.sequenceLogits([IDS])
  let step = await hf.model.forward({tokens: [IDS.slice(0, 4)], logits: 'all'})
  assert.ok(relativeDiff(step.logits[0]!, full!.subarray(0, 4 * V)) < 1e-5)
  for (let p = 4; p < IDS.length; p++) {
    step = await hf.model.forward({tokens: [[IDS[p]!]], cache: step.cache})
    assert.ok(relativeDiff(step.logits[0]!, full!.subarray(p * V, (p + 1) * V)) < 1e-5, `position ${p}`)
  }
  assert.equal(step.cache.lengths, [IDS.length])
  // a chunk of several tokens after a past (chunked prefill)
  const head = await hf.model.forward({tokens: [IDS.slice(0, 5)]})
  const chunk = await hf.model.forward({tokens: [IDS.slice(5)], cache: head.cache, logits: 'all'})
  assert.ok(relativeDiff(chunk.logits[0]!, full!.subarray(5 * V)) < 1e-5)
})

real('a batch of sequences of different lengths equals each run alone, through prefill and decode', async () => {
  const [fa, fb] = await hf.model.sequenceLogits([IDS, OTHER])
  const [aloneB] = await hf.model.sequenceLogits([OTHER])
  assert.ok(relativeDiff(fb!, aloneB!) < 1e-5)
  // prefill 6 and 2 tokens together (right-padded), then decode both rows one token per step
  let step = await hf.model.forward({tokens: [IDS.slice(0, 6), OTHER.slice(0, 2)]})
  assert.ok(relativeDiff(step.logits[0]!, fa!.subarray(5 * V, 6 * V)) < 1e-5)
  assert.ok(relativeDiff(step.logits[1]!, fb!.subarray(1 * V, 2 * V)) < 1e-5)
  for (let s = 0; s < 5; s++) {
    step = await hf.model.forward({tokens: [[IDS[6 + s]!], [OTHER[2 + s]!]], cache: step.cache})
    assert.ok(relativeDiff(step.logits[0]!, fa!.subarray((6 + s) * V, (7 + s) * V)) < 1e-5, `row 0 step ${s}`)
    assert.ok(relativeDiff(step.logits[1]!, fb!.subarray((2 + s) * V, (3 + s) * V)) < 1e-5, `row 1 step ${s}`)
  }
  assert.equal(step.cache.lengths, [11, 7])
  // rows leave and join: row 0 continues alone, then beside a fresh sequence prefilled in the same call
  const mixed = await hf.model.forward({tokens: [[IDS[11]!], OTHER.slice(0, 3)], cache: KvCache.concat([step.cache.take([0]), hf.model.emptyCache(1)]), logits: 'all'})
  assert.ok(relativeDiff(mixed.logits[0]!, fa!.subarray(11 * V)) < 1e-5)
  assert.ok(relativeDiff(mixed.logits[1]!, fb!.subarray(0, 3 * V)) < 1e-5)
  assert.equal(mixed.cache.lengths, [12, 3])
})

real('an allocated cache written in place gives the same logits, doubling when it runs out of room', async () => {
  const [fa, fb] = await hf.model.sequenceLogits([IDS, OTHER])
  let step = await hf.model.forward({tokens: [IDS.slice(0, 5), OTHER.slice(0, 3)], cache: hf.model.emptyCache(2, 6)})
  const arrays = step.cache.keys[0]
  assert.ok(step.cache.inPlace)
  assert.is(step.cache.capacity, 6)
  for (let s = 0; s < 4; s++) {
    step = await hf.model.forward({tokens: [[IDS[5 + s]!], [OTHER[3 + s]!]], cache: step.cache})
    assert.ok(relativeDiff(step.logits[0]!, fa!.subarray((5 + s) * V, (6 + s) * V)) < 1e-5, `row 0 step ${s}`)
    assert.ok(relativeDiff(step.logits[1]!, fb!.subarray((3 + s) * V, (4 + s) * V)) < 1e-5, `row 1 step ${s}`)
    if (s === 0) assert.is(step.cache.keys[0], arrays, 'written in place while it fits')
  }
  assert.is(step.cache.capacity, 12) // 6 was full after the first step: doubled
  assert.ok(step.cache.inPlace)
  assert.equal(step.cache.lengths, [9, 7])
  // the row-by-row path (a chunk after a past, beside another row) keeps the cache allocated
  const mixed = await hf.model.forward({tokens: [IDS.slice(9, 11), [OTHER[0]!]], cache: step.cache, logits: 'all'})
  assert.ok(relativeDiff(mixed.logits[0]!, fa!.subarray(9 * V, 11 * V)) < 1e-5)
  assert.ok(mixed.cache.inPlace)
  assert.equal(mixed.cache.lengths, [11, 8])
})

real('greedy decoding from "Once upon a time" writes the text quoted in PROVENANCE.md', async () => {
  const tokenizer = await loadTokenizer(join(STORIES, 'hf'))
  const ids = tokenizer.encode('Once upon a time')
  let step = await hf.model.forward({tokens: [ids]})
  while (tokenizer.decode(ids).length < STORIES_GREEDY.length && ids.length < 100) {
    const next = argmax(step.logits[0]!)
    ids.push(next)
    step = await hf.model.forward({tokens: [[next]], cache: step.cache})
  }
  assert.is(tokenizer.decode(ids).slice(0, STORIES_GREEDY.length), STORIES_GREEDY)
})

real('bad forward calls are usage errors', async () => {
  assert.is((await rejection(hf.model.forward({tokens: [[1, 512]]}))).code, 'TOKEN_OUT_OF_RANGE')
  assert.is((await rejection(hf.model.forward({tokens: [[]]}))).code, 'FORWARD_EMPTY')
  assert.is((await rejection(hf.model.forward({tokens: [[1]], cache: hf.model.emptyCache(2)}))).code, 'FORWARD_CACHE_ROWS')
  const long = new Array<number>(hf.model.maxPositions + 1).fill(5)
  const err = await rejection(hf.model.forward({tokens: [long]}))
  assert.is(err.code, 'CONTEXT_TOO_LONG')
  assert.is(err.exitCode, 2)
})

test.run()
