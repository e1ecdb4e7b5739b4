import {existsSync, readFileSync} from 'node:fs'
import {join, resolve} from 'node:path'
import {suite} from 'uvu'
import * as assert from 'uvu/assert'
import {REPO_ROOT, skipIf} from '../../helpers/index.js'
import {parseGguf} from '../../helpers/gguf-reference.js'
import {readSafetensorsF64} from '../../helpers/llama-reference.js'
import {GGUF_ARCHITECTURES, ggufArchitectureForModelType, ggufTensorName, hfTensorName, permuteRowsFromGguf, permuteRowsToGguf, qkRole} from '../../../src/core/models/gguf-names.js'

const test = suite('models/gguf-names')

test('llama names map both ways', () => {
  const llama = GGUF_ARCHITECTURES.llama!
  const pairs: Array<[string, string]> = [
    ['model.embed_tokens.weight', 'token_embd.weight'],
    ['model.layers.3.self_attn.q_proj.weight', 'blk.3.attn_q.weight'],
    ['model.layers.12.self_attn.o_proj.weight', 'blk.12.attn_output.weight'],
    ['model.layers.0.post_attention_layernorm.weight', 'blk.0.ffn_norm.weight'],
    ['model.layers.1.mlp.down_proj.weight', 'blk.1.ffn_down.weight'],
    ['model.norm.weight', 'output_norm.weight'],
    ['lm_head.weight', 'output.weight'],
  ]
  for (const [hf, gguf] of pairs) {
    assert.is(ggufTensorName(llama, hf), gguf)
    assert.is(hfTensorName(llama, gguf), hf)
  }
  assert.is(ggufTensorName(GGUF_ARCHITECTURES.qwen2!, 'model.layers.2.self_attn.k_proj.bias'), 'blk.2.attn_k.bias')
  assert.is(ggufTensorName(llama, 'model.layers.0.self_attn.rotary_emb.inv_freq'), undefined)
})

test('gpt2 names, with or without the transformer. prefix', () => {
  const gpt2 = GGUF_ARCHITECTURES.gpt2!
  assert.is(ggufTensorName(gpt2, 'transformer.h.4.attn.c_attn.weight'), 'blk.4.attn_qkv.weight')
  assert.is(ggufTensorName(gpt2, 'h.4.mlp.c_proj.bias'), 'blk.4.ffn_down.bias')
  assert.is(hfTensorName(gpt2, 'position_embd.weight'), 'wpe.weight')
})

test('model types choose the architecture; unknown ones have none', () => {
  assert.is(ggufArchitectureForModelType('mistral')!.gguf, 'llama')
  assert.is(ggufArchitectureForModelType('qwen2')!.permuteQK, false)
  assert.is(ggufArchitectureForModelType('t5'), undefined)
  assert.is(qkRole('model.layers.0.self_attn.k_proj.weight'), 'k')
  assert.is(qkRole('model.layers.0.self_attn.v_proj.weight'), undefined)
})

test('q/k permutation: hand-worked head of 4 rows, and the inverse', () => {
  // one head, head_dim 4, 1 column: transformers rows [a0 a1 | b0 b1] (pairs (i, i+2)) → llama.cpp [a0 b0 a1 b1]
  const rows = Float32Array.from([10, 11, 20, 21])
  assert.equal([...permuteRowsToGguf(rows, 1, 1)], [10, 20, 11, 21])
  // two heads, head_dim 4, 2 columns
  const w = Float32Array.from({length: 16}, (_, i) => i)
  const p = permuteRowsToGguf(w, 2, 2)
  assert.equal([...p.slice(0, 8)], [0, 1, 4, 5, 2, 3, 6, 7])
  assert.equal([...permuteRowsFromGguf(p, 2, 2)], [...w])
  assert.throws(() => permuteRowsToGguf(Float32Array.from([1, 2, 3]), 1, 1), /cannot permute/)
})

const STORIES = resolve(REPO_ROOT, '../shared/real-models/stories260K')
const storiesGguf = existsSync(join(STORIES, 'gguf/stories260K.gguf'))

skipIf(test, storiesGguf ? undefined : `${STORIES} is absent (stories260K, see ../shared/real-models/PROVENANCE.md)`)('stories260K: every HF tensor, renamed and q/k-permuted, equals llama.cpp\'s own GGUF', () => {
  const hf = readSafetensorsF64(join(STORIES, 'hf/model.safetensors'))
  const buf = readFileSync(join(STORIES, 'gguf/stories260K.gguf'))
  const gguf = parseGguf(buf)
  const byName = new Map(gguf.tensors.map((t) => [t.name, t]))
  const llama = GGUF_ARCHITECTURES.llama!
  for (const [name, {shape, values}] of hf) {
    const target = byName.get(ggufTensorName(llama, name)!)
    assert.ok(target, name)
    assert.is(target!.type, 0) // F32
    const cols = shape.length === 2 ? shape[1]! : 1
    const role = qkRole(name)
    const expected = role ? permuteRowsToGguf(Float64Array.from(values), role === 'q' ? 8 : 4, cols) : values
    const at = gguf.dataStart + Number(target!.offset)
    for (let i = 0; i < expected.length; i++) if (buf.readFloatLE(at + 4 * i) !== expected[i]) assert.unreachable(`${name}[${i}]`)
  }
})

test.run()
