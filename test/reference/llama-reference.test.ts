/**
 * The float64 reference itself, checked against facts from outside the project:
 * stories260K's greedy text (llama2.c's run.c output, quoted in
 * ../shared/real-models/PROVENANCE.md) and PEFT's scaling rules.
 */
import {existsSync, readFileSync} from 'node:fs'
import {join, resolve} from 'node:path'
import {suite} from 'uvu'
import * as assert from 'uvu/assert'
import {REPO_ROOT, skipIf} from '../helpers/index.js'
import {LlamaReference, argmax, klDivergence, logSoftmax, ropeInverseFrequencies} from '../helpers/llama-reference.js'

const STORIES = resolve(REPO_ROOT, '../shared/real-models/stories260K')
const have = existsSync(join(STORIES, 'hf/config.json'))
const stories = suite('reference/llama-reference (stories260K)')
const real = skipIf(stories, have ? undefined : `${STORIES} is absent (stories260K, see ../shared/real-models/PROVENANCE.md)`)

real('greedy decoding from "Once upon a time" writes llama2.c\'s text', async () => {
  const model = await LlamaReference.fromHfFolder(join(STORIES, 'hf'))
  const vocab = (JSON.parse(readFileSync(join(STORIES, 'hf/tokenizer.json'), 'utf8')) as {model: {vocab: Record<string, number>}}).model.vocab
  const pieces = new Map(Object.entries(vocab).map(([piece, id]) => [id, piece]))
  const ids = [1, ...['▁Once', '▁upon', '▁a', '▁time'].map((p) => vocab[p]!)]
  const prompt = ids.length
  const expected = 'Once upon a time, there was a little girl named Lily. She loved to play outside in the park. One day, she saw a big, red ball.'
  const decode = () => ids.slice(1).map((id) => pieces.get(id)!).join('').replace(/▁/g, ' ').trim()
  while (decode().length < expected.length && ids.length < prompt + 80) {
    const rows = model.logits(ids)
    ids.push(argmax(rows[rows.length - 1]!))
  }
  assert.is(decode().slice(0, expected.length), expected)
})

real('merging an adapter changes the distribution; merging it with weight 0 does not', async () => {
  const base = await LlamaReference.fromHfFolder(join(STORIES, 'hf'))
  const ids = [1, 403, 407, 261, 378, 11, 356, 292, 261]
  const merged = base.clone()
  await merged.mergeAdapter(join(STORIES, 'adapters/lora_medium'))
  const zero = base.clone()
  await zero.mergeAdapter(join(STORIES, 'adapters/lora_medium'), 0)
  const a = base.logits(ids)
  const b = merged.logits(ids)
  const c = zero.logits(ids)
  let kl = 0
  for (let p = 0; p < ids.length; p++) kl += klDivergence(a[p]!, b[p]!)
  assert.ok(kl / ids.length > 0.01, `mean KL ${kl / ids.length}`)
  for (let p = 0; p < ids.length; p++) assert.is(klDivergence(a[p]!, c[p]!), 0)
})

stories.run()

const unit = suite('reference/llama-reference (formulas)')

unit('log-softmax sums to one and KL of a distribution to itself is zero', () => {
  const row = [1, 2, 3, -4]
  const p = logSoftmax(row)
  assert.ok(Math.abs(p.reduce((s, v) => s + Math.exp(v), 0) - 1) < 1e-15)
  assert.is(klDivergence(row, row), 0)
  // hand-worked: P = softmax([0, 0]) = [½, ½], Q = softmax([ln 3, 0]) = [¾, ¼]: KL = ½ ln(2/3) + ½ ln 2
  assert.ok(Math.abs(klDivergence([0, 0], [Math.log(3), 0]) - (0.5 * Math.log(2 / 3) + 0.5 * Math.log(2))) < 1e-15)
})

unit('Llama 3 rope scaling keeps high frequencies, divides low ones by the factor', () => {
  const base = {hidden: 0, intermediate: 0, layers: 0, heads: 1, kvHeads: 1, headDim: 128, vocab: 0, rmsEps: 0, ropeTheta: 500000, tieEmbeddings: true}
  const plain = ropeInverseFrequencies({...base, ropeScaling: null})
  const scaled = ropeInverseFrequencies({...base, ropeScaling: {type: 'llama3', factor: 8, lowFreqFactor: 1, highFreqFactor: 4, originalMaxPositions: 8192}})
  assert.is(scaled[0], plain[0]) // wavelength 2π < 8192 / 4: unchanged
  assert.ok(Math.abs(scaled[63]! - plain[63]! / 8) < 1e-20) // wavelength > 8192: divided by 8
})

unit.run()
