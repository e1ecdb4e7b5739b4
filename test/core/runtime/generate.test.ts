/**
 * Generation: the sampler (greedy, softmax with temperature, seeded), and
 * generateTokens on stories260K (greedy text, stop ids, length limits).
 */
import {join} from 'node:path'
import {suite} from 'uvu'
import * as assert from 'uvu/assert'
import {STORIES, STORIES_GREEDY, storiesMissing} from '../../helpers/decoder-fixtures.js'
import {rejection, skipIf} from '../../helpers/index.js'
import {Rng} from '../../../src/core/random.js'
import {generateTokens, sampleToken} from '../../../src/core/runtime/generate.js'
import {generateText} from '../../../src/core/runtime/generate-text.js'
import {LoadedDecoder, loadDecoder} from '../../../src/core/runtime/load-decoder.js'
import {loadTokenizer} from '../../../src/core/runtime/tokenizer.js'

const unit = suite('runtime/generate (sampler)')

unit('temperature 0 is the argmax; sampling follows softmax(logits / T)', () => {
  const row = Float32Array.from([0, Math.log(3), Math.log(6), -30])
  const rng = new Rng(1, 'test')
  assert.is(sampleToken(row, 0, rng), 2)
  const counts = [0, 0, 0, 0]
  const n = 20000
  for (let i = 0; i < n; i++) counts[sampleToken(row, 1, rng)]!++
  // p = 0.1, 0.3, 0.6, ~0: a fixed seed, so the counts are fixed; the bound is the binomial 4σ
  ;[0.1, 0.3, 0.6].forEach((p, k) => assert.ok(Math.abs(counts[k]! / n - p) < 4 * Math.sqrt((p * (1 - p)) / n), `token ${k}: ${counts[k]! / n}`))
  assert.is(counts[3], 0)
  // T = 2 flattens: p ∝ 1, √3, √6
  const flat = [0, 0, 0, 0]
  for (let i = 0; i < n; i++) flat[sampleToken(row, 2, rng)]!++
  const z = 1 + Math.sqrt(3) + Math.sqrt(6)
  assert.ok(Math.abs(flat[0]! / n - 1 / z) < 0.02)
})

unit.run()

const missing = storiesMissing()
const have = missing === undefined
const test = suite('runtime/generate (stories260K)')
const real = skipIf(test, missing)
let loaded: LoadedDecoder
test.before(async () => {
  if (have) loaded = await loadDecoder({base: join(STORIES, 'hf')})
})
test.after(async () => {
  await loaded?.close()
})

real('greedy generation writes PROVENANCE.md\'s text; a seed makes sampling repeatable', async () => {
  const tokenizer = await loadTokenizer(join(STORIES, 'hf'))
  const prompt = tokenizer.encode('Once upon a time')
  const greedy = await generateTokens(loaded.model, {prompt, maxTokens: 57})
  assert.is(greedy.stop, 'length')
  assert.is(greedy.ids.length, 57)
  assert.ok(tokenizer.decode([...prompt, ...greedy.ids]).startsWith(STORIES_GREEDY))
  const a = await generateTokens(loaded.model, {prompt, maxTokens: 20, temperature: 1, seed: 7})
  const b = await generateTokens(loaded.model, {prompt, maxTokens: 20, temperature: 1, seed: 7})
  const c = await generateTokens(loaded.model, {prompt, maxTokens: 20, temperature: 1, seed: 8})
  assert.equal(a.ids, b.ids)
  assert.not.equal(a.ids, c.ids)
})

real('generation stops before a stop id, and at the length limit', async () => {
  const tokenizer = await loadTokenizer(join(STORIES, 'hf'))
  const prompt = tokenizer.encode('Once upon a time')
  const full = await generateTokens(loaded.model, {prompt, maxTokens: 10})
  const stopped = await generateTokens(loaded.model, {prompt, maxTokens: 10, stopIds: [full.ids[3]!]})
  assert.equal(stopped, {ids: full.ids.slice(0, 3), stop: 'eos', promptTokens: prompt.length})
  const seen: number[] = []
  await generateTokens(loaded.model, {prompt, maxTokens: 4, onToken: (id) => seen.push(id)})
  assert.equal(seen, full.ids.slice(0, 4))
  assert.is((await rejection(generateTokens(loaded.model, {prompt: [], maxTokens: 3}))).code, 'EMPTY_PROMPT')
  assert.is((await rejection(generateTokens(loaded.model, {prompt, maxTokens: 3, temperature: -1}))).code, 'BAD_TEMPERATURE')
})

real('generateText streams the same text it returns, from the GGUF base with an adapter', async () => {
  const pieces: string[] = []
  const result = await generateText({
    base: join(STORIES, 'gguf/stories260K.gguf'),
    adapters: [{path: join(STORIES, 'adapters/lora_small')}],
    prompt: 'Once upon a time',
    maxTokens: 20,
    onText: (p) => pieces.push(p),
  })
  assert.is(pieces.join(''), result.text)
  assert.is(result.ids.length, 20)
  assert.equal(result.adapters, ['lora_small'])
  const plain = await generateText({base: join(STORIES, 'gguf/stories260K.gguf'), prompt: 'Once upon a time', maxTokens: 20})
  assert.ok(('Once upon a time' + plain.text).startsWith(STORIES_GREEDY.slice(0, 60)))
})

test.run()
