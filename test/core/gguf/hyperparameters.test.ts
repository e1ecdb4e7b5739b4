/**
 * config.json → llama.cpp's model metadata, per architecture, typed as
 * llama.cpp's loader reads it; Llama 3's RoPE factors against the float64
 * reference's frequencies; one-line refusals.
 */
import {suite} from 'uvu'
import * as assert from 'uvu/assert'
import {GgufValueType} from '../../../src/core/formats/gguf-types.js'
import {describeHfModel, llama3RopeFactors} from '../../../src/core/gguf/hyperparameters.js'
import {llamaConfig, qwen2Config} from '../../../src/core/models/llama.js'
import {ropeInverseFrequencies} from '../../helpers/llama-reference.js'

const test = suite('gguf/hyperparameters')

const kvOf = (config: Record<string, unknown>) => new Map(describeHfModel(config, 'config.json').kv.map((e) => [e.key, [e.type, e.value]]))

test('llama: every key llama.cpp requires, counts UINT32 and the rest FLOAT32; GQA heads and q/k permutation for llama, none for qwen2', () => {
  const config = {...llamaConfig({hidden: 256, intermediate: 688, layers: 3, vocab: 1000}, 'float16'), num_key_value_heads: 2, head_dim: 64, num_attention_heads: 4}
  const kv = kvOf(config)
  const U = GgufValueType.UINT32
  const F = GgufValueType.FLOAT32
  assert.equal(Object.fromEntries(kv), {
    'llama.context_length': [U, 4096],
    'llama.embedding_length': [U, 256],
    'llama.block_count': [U, 3],
    'llama.feed_forward_length': [U, 688],
    'llama.attention.head_count': [U, 4],
    'llama.attention.head_count_kv': [U, 2],
    'llama.attention.layer_norm_rms_epsilon': [F, 1e-5],
    'llama.rope.freq_base': [F, 10000],
    'llama.rope.dimension_count': [U, 64],
    'llama.vocab_size': [U, 1000],
  })
  const spec = describeHfModel(config, 'config.json')
  assert.equal([spec.architecture.gguf, spec.architecture.permuteQK, spec.heads, spec.kvHeads, spec.vocabSize], ['llama', true, 4, 2, 1000])
  assert.ok(spec.isIgnored('model.layers.0.self_attn.rotary_emb.inv_freq'))
  const qwen = describeHfModel(qwen2Config({hidden: 128, intermediate: 256, layers: 1, vocab: 500}, 'float16'), 'config.json')
  assert.equal([qwen.architecture.gguf, qwen.architecture.permuteQK], ['qwen2', false])
  assert.equal(qwen.kv.find((e) => e.key === 'qwen2.rope.freq_base')!.value, 1000000)
  assert.is(describeHfModel({...config, model_type: 'mistral'}, 'config.json').architecture.gguf, 'llama')
})

test('rope scaling: linear as keys; Llama 3 as rope_freqs.weight, the factors the reference divides the frequencies by', () => {
  const base = llamaConfig({hidden: 256, intermediate: 512, layers: 1, vocab: 600}, 'float32')
  const linear = kvOf({...base, rope_scaling: {rope_type: 'linear', factor: 4.0}})
  assert.equal([linear.get('llama.rope.scaling.type'), linear.get('llama.rope.scaling.factor')], [[GgufValueType.STRING, 'linear'], [GgufValueType.FLOAT32, 4]])
  const scaling = {rope_type: 'llama3', factor: 8, low_freq_factor: 1, high_freq_factor: 4, original_max_position_embeddings: 64}
  const spec = describeHfModel({...base, rope_theta: 500000, rope_scaling: scaling}, 'config.json')
  const extra = spec.extraTensors(new Set())
  assert.equal(extra.map((e) => e.name), ['rope_freqs.weight'])
  const factors = (extra[0] as {values: Float32Array}).values
  const ref = (type: 'llama3' | null) =>
    ropeInverseFrequencies({hidden: 256, intermediate: 512, layers: 1, heads: 4, kvHeads: 4, headDim: 64, vocab: 600, rmsEps: 1e-5, ropeTheta: 500000, ropeScaling: type ? {type, factor: 8, lowFreqFactor: 1, highFreqFactor: 4, originalMaxPositions: 64} : null, tieEmbeddings: false})
  const plainFreq = ref(null)
  const scaled = ref('llama3')
  for (let i = 0; i < 32; i++) assert.ok(Math.abs(plainFreq[i]! / factors[i]! - scaled[i]!) <= 1e-6 * plainFreq[i]!, `frequency ${i}`)
  assert.ok(factors.some((f) => f === 8) && factors.some((f) => f === 1), 'both ends of the ramp are present')
  assert.equal([...llama3RopeFactors(64, 500000, scaling)], [...factors])
})

test('gpt2: its own keys, Conv1D weights named for transposition, the causal-mask buffers ignored, output.weight added from wte', () => {
  const spec = describeHfModel({model_type: 'gpt2', n_embd: 64, n_head: 4, n_layer: 2, n_ctx: 128, n_positions: 128, vocab_size: 300, layer_norm_epsilon: 1e-5}, 'config.json')
  assert.equal(
    spec.kv.map((e) => e.key),
    ['gpt2.context_length', 'gpt2.embedding_length', 'gpt2.block_count', 'gpt2.feed_forward_length', 'gpt2.attention.head_count', 'gpt2.attention.layer_norm_epsilon'],
  )
  assert.is(spec.kv.find((e) => e.key === 'gpt2.feed_forward_length')!.value, 256)
  assert.ok(spec.isConv1D('transformer.h.1.attn.c_attn.weight') && spec.isConv1D('h.0.mlp.c_proj.weight'))
  assert.not.ok(spec.isConv1D('transformer.h.1.attn.c_attn.bias') || spec.isConv1D('transformer.wte.weight'))
  assert.ok(spec.isIgnored('transformer.h.0.attn.bias') && spec.isIgnored('h.0.attn.masked_bias'))
  assert.not.ok(spec.isIgnored('transformer.h.0.attn.c_attn.bias'))
  assert.equal(spec.extraTensors(new Set(['token_embd.weight'])), [{name: 'output.weight', copyOf: 'token_embd.weight'}])
})

test('one-line refusals: another architecture, another activation, missing hyperparameters, an unsupported rope scaling', () => {
  const base = llamaConfig({hidden: 64, intermediate: 128, layers: 1, vocab: 400}, 'float32')
  const cases: Array<[Record<string, unknown>, string, RegExp]> = [
    [{model_type: 'bert'}, 'GGUF_UNSUPPORTED_MODEL', /^convert config\.json: model_type "bert" is not an architecture lora writes as GGUF \(llama, mistral, qwen2, gpt2\); convert it with llama\.cpp's convert_hf_to_gguf\.py and pass that GGUF as --base$/],
    [{...base, hidden_act: 'gelu'}, 'GGUF_UNSUPPORTED_MODEL', /hidden_act "gelu" \(llama\.cpp's llama uses SiLU\)/],
    [{...base, hidden_size: undefined}, 'CONFIG_INVALID', /^read config\.json: hidden_size is missing, and llama\.cpp needs it$/],
    [{...base, rope_scaling: {rope_type: 'dynamic', factor: 2}}, 'GGUF_UNSUPPORTED_MODEL', /rope_scaling type "dynamic" is not one lora converts \(linear, llama3\)/],
  ]
  for (const [config, code, message] of cases) {
    const error = (() => {
      try {
        describeHfModel(config, 'config.json')
      } catch (e) {
        return e as Error & {code: string}
      }
      throw new Error('expected a refusal')
    })()
    assert.is(error.code, code)
    assert.match(error.message, message)
  }
})

test.run()
