/**
 * The decoder runtime on small models synthesized in the test, each against
 * the float64 reference: qwen2-shaped (q/k/v biases, GQA, untied head),
 * Llama 3 and linear RoPE scaling, F16/BF16 weights, a sharded checkpoint,
 * and configs the runtime refuses.
 */
import {mkdirSync, writeFileSync} from 'node:fs'
import {join} from 'node:path'
import {suite} from 'uvu'
import * as assert from 'uvu/assert'
import {LlamaReference} from '../../helpers/llama-reference.js'
import {SyntheticDecoderSpec, relativeDiff, relativeError, writeSyntheticDecoder} from '../../helpers/decoder-fixtures.js'
import {rejection, tempDir} from '../../helpers/index.js'
import {loadDecoder} from '../../../src/core/runtime/load-decoder.js'

const test = suite('runtime/synthetic-models')
const tmp = tempDir('lora-runtime-synth-')
test.after(() => tmp.cleanup())

const ids = (n: number, vocab: number, seed: number) => Array.from({length: n}, (_, i) => (i * 37 + seed * 11 + 3) % vocab)

const BASE: SyntheticDecoderSpec = {modelType: 'llama', hidden: 64, intermediate: 96, layers: 2, heads: 4, kvHeads: 2, vocab: 97, tie: false, biases: false, seed: 1}

/** Synthesize `spec`, run `tokens` through runtime and reference, return the relative error. */
async function compare(name: string, spec: SyntheticDecoderSpec, tokens: number[]): Promise<{err: number; logits: Float32Array}> {
  const dir = join(tmp.path, name)
  mkdirSync(dir)
  await writeSyntheticDecoder(dir, spec)
  const loaded = await loadDecoder({base: dir})
  try {
    const [logits] = await loaded.model.sequenceLogits([tokens])
    const reference = await LlamaReference.fromHfFolder(dir)
    return {err: relativeError(logits!, reference.logits(tokens), spec.vocab), logits: logits!}
  } finally {
    await loaded.close()
  }
}

test('qwen2-shaped: q/k/v biases, 4 query heads on 2 KV heads of 16, untied head', async () => {
  const spec: SyntheticDecoderSpec = {...BASE, modelType: 'qwen2', biases: true, ropeTheta: 1e6, seed: 2}
  const {err} = await compare('qwen2', spec, ids(20, spec.vocab, 1))
  assert.ok(err < 1e-4, `relative error ${err}`)
})

test('Llama 3 rope_scaling (all three frequency bands in use) matches, and matters', async () => {
  const scaling = {rope_type: 'llama3', factor: 8, low_freq_factor: 1, high_freq_factor: 4, original_max_position_embeddings: 32}
  const spec: SyntheticDecoderSpec = {...BASE, headDim: 16, ropeScaling: scaling, tie: true, seed: 3}
  const tokens = ids(40, spec.vocab, 2)
  const scaled = await compare('llama3', spec, tokens)
  assert.ok(scaled.err < 1e-4, `relative error ${scaled.err}`)
  const plain = await compare('llama3-off', {...spec, ropeScaling: null}, tokens)
  assert.ok(relativeDiff(plain.logits, scaled.logits) > 1e-3, 'the scaling changes the logits')
})

test('linear rope_scaling matches', async () => {
  const spec: SyntheticDecoderSpec = {...BASE, ropeScaling: {type: 'linear', factor: 4}, seed: 4}
  const {err} = await compare('linear', spec, ids(24, spec.vocab, 3))
  assert.ok(err < 1e-4, `relative error ${err}`)
})

test('F16 and BF16 weights, and a checkpoint sharded over three files', async () => {
  for (const [name, extra] of [['f16', {dtype: 'F16'}], ['bf16', {dtype: 'BF16'}], ['sharded', {shards: 3}]] as const) {
    const spec: SyntheticDecoderSpec = {...BASE, ...extra, seed: 5}
    const {err} = await compare(name, spec, ids(12, spec.vocab, 4))
    assert.ok(err < 1e-4, `${name}: relative error ${err}`)
  }
})

test('configs the runtime cannot build are refused with one line naming the file', async () => {
  const cases: Array<[string, Record<string, unknown>, string]> = [
    ['gpt2', {model_type: 'gpt2'}, 'DECODER_UNSUPPORTED_ARCH'],
    ['yarn', {rope_scaling: {rope_type: 'yarn', factor: 4}}, 'DECODER_UNSUPPORTED_ROPE'],
    ['heads', {num_key_value_heads: 3}, 'DECODER_BAD_CONFIG'],
    ['hidden', {hidden_size: 'big'}, 'DECODER_BAD_CONFIG'],
  ]
  const dir = join(tmp.path, 'bad-base')
  mkdirSync(dir)
  await writeSyntheticDecoder(dir, {...BASE, seed: 6})
  const config = JSON.parse((await import('node:fs')).readFileSync(join(dir, 'config.json'), 'utf8')) as Record<string, unknown>
  for (const [name, change, code] of cases) {
    writeFileSync(join(dir, 'config.json'), JSON.stringify({...config, ...change}))
    const err = await rejection(loadDecoder({base: dir}))
    assert.is(err.code, code, name)
    assert.is(err.exitCode, 2)
    assert.ok(err.message.includes('config.json'), err.message)
  }
  writeFileSync(join(dir, 'config.json'), JSON.stringify({...config, intermediate_size: 95}))
  const err = await rejection(loadDecoder({base: dir}))
  assert.is(err.code, 'DECODER_BAD_SHAPE')
  assert.match(err.message, /gate_proj\.weight is \[96, 64\] \(expected \[95, 64\]/)
})

test.run()
