/**
 * `lora export` without an engine: the GGUF adapter's layout read by an
 * independent reader (alpha 0, scaling folded into lora_b, q/k rows
 * permuted, embedding lora_a transposed), packs (--adapter, --all), and the
 * one-line refusals.
 */
import {existsSync, readFileSync, readdirSync, unlinkSync, writeFileSync} from 'node:fs'
import {join} from 'node:path'
import {suite} from 'uvu'
import * as assert from 'uvu/assert'
import {fromFloat} from '../../../src/core/dtype.js'
import {exportAdapters} from '../../../src/core/export/export-adapters.js'
import {loraEmbeddingKeys, loraKeys, peftLoraConfig, writeAdapter} from '../../../src/core/formats/peft-adapter-writer.js'
import {writeSafetensors} from '../../../src/core/formats/safetensors-writer.js'
import {permuteRowsToGguf} from '../../../src/core/models/gguf-names.js'
import {packAdapters} from '../../../src/core/pack/pack-adapters.js'
import {synthesizeBase} from '../../../src/core/synth/base.js'
import {readGgufF64} from '../../helpers/gguf-reference.js'
import {rejection, tempDir} from '../../helpers/index.js'
import {readSafetensorsF64} from '../../helpers/llama-reference.js'
import {normal} from '../../helpers/merge-fixtures.js'

const test = suite('export/export-adapters')

const dir = tempDir('lora-export-')
const base = join(dir.path, 'base')
// hidden 128 (2 heads of 64), MLP 64, vocab 400
const D = 128
const I = 64
const V = 400

function module(name: string, inF: number, outF: number, r: number) {
  return {name, inF, outF, r, a: normal(r * inF, 0.1, 'A', name), b: normal(outF * r, 0.1, 'B', name)}
}
const q = module('model.layers.0.self_attn.q_proj', D, D, 4)
const up = module('model.layers.0.mlp.up_proj', D, I, 2)

async function writePeft(path: string, config: Record<string, unknown>, mods = [q, up], extra: Array<{name: string; shape: number[]; values: Float64Array}> = []) {
  await writeAdapter(
    path,
    peftLoraConfig({target_modules: ['q_proj', 'up_proj'], ...config}),
    [
      ...mods.flatMap((m) => {
        const [ka, kb] = loraKeys(m.name)
        return [
          {name: ka, dtype: 'F32' as const, shape: [m.r, m.inF], data: fromFloat('F32', m.a)},
          {name: kb, dtype: 'F32' as const, shape: [m.outF, m.r], data: fromFloat('F32', m.b)},
        ]
      }),
      ...extra.map((t) => ({name: t.name, dtype: 'F32' as const, shape: t.shape, data: fromFloat('F32', t.values)})),
    ],
  )
}

test.before(async () => {
  await synthesizeBase({out: base, hidden: D, intermediate: I, layers: 1, vocab: V, dtype: 'F32', seed: 4})
  // q_proj at r = 4 with alpha 8 (scaling 2), up_proj at r = 2 through rank_pattern, alpha_pattern 1: scaling 0.5
  await writePeft(join(dir.path, 'a'), {r: 4, lora_alpha: 8, rank_pattern: {up_proj: 2}, alpha_pattern: {up_proj: 1}})
  await writePeft(join(dir.path, 'b'), {r: 4, lora_alpha: 4, rank_pattern: {up_proj: 2}})
})
test.after(() => dir.cleanup())

test('the GGUF adapter: general.type adapter, adapter.lora.alpha 0, lora_a = A, lora_b = scaling · B with q rows in llama.cpp\'s order', async () => {
  const out = join(dir.path, 'a.gguf')
  const r = await exportAdapters({input: join(dir.path, 'a'), base, out, format: 'gguf', dtype: 'f32'})
  assert.equal([r.architecture, r.dtype, r.adapters.length, r.adapters[0]!.modules], ['llama', 'F32', 1, 2])
  const {parsed, tensors} = readGgufF64(readFileSync(out))
  const kv = (k: string) => parsed.kv.get(k)
  assert.equal([kv('general.architecture')!.value, kv('general.type')!.value, kv('adapter.type')!.value, kv('adapter.lora.alpha'), kv('general.file_type')!.value], ['llama', 'adapter', 'lora', {type: 6, value: 0}, 0])
  assert.equal([...tensors.keys()], ['blk.0.attn_q.weight.lora_a', 'blk.0.attn_q.weight.lora_b', 'blk.0.ffn_up.weight.lora_a', 'blk.0.ffn_up.weight.lora_b'])
  const close = (x: ArrayLike<number>, y: ArrayLike<number>) => Array.from(x).every((v, i) => Math.abs(v - y[i]!) <= 1e-6 * Math.max(1, Math.abs(y[i]!)))
  assert.equal(tensors.get('blk.0.attn_q.weight.lora_a')!.shape, [4, D])
  assert.ok(close(tensors.get('blk.0.attn_q.weight.lora_a')!.values, Float64Array.from(q.a, Math.fround)))
  assert.equal(tensors.get('blk.0.attn_q.weight.lora_b')!.shape, [D, 4])
  assert.ok(close(tensors.get('blk.0.attn_q.weight.lora_b')!.values, permuteRowsToGguf(q.b.map((v) => 2 * Math.fround(v)), 2, 4)))
  assert.ok(close(tensors.get('blk.0.ffn_up.weight.lora_b')!.values, up.b.map((v) => 0.5 * Math.fround(v))))
})

test('embedding LoRA: token_embd.weight.lora_a is Aᵀ [vocab, r], lora_b is scaling · B [dim, r]', async () => {
  const path = join(dir.path, 'emb')
  const a = normal(2 * V, 1, 'EA')
  const b = normal(D * 2, 0.1, 'EB')
  const [ea, eb] = loraEmbeddingKeys('model.embed_tokens')
  await writeAdapter(path, peftLoraConfig({r: 2, lora_alpha: 6, target_modules: ['embed_tokens']}), [
    {name: ea, dtype: 'F32', shape: [2, V], data: fromFloat('F32', a)},
    {name: eb, dtype: 'F32', shape: [D, 2], data: fromFloat('F32', b)},
  ])
  const out = join(dir.path, 'emb.gguf')
  await exportAdapters({input: path, base, out, format: 'gguf', dtype: 'F32'})
  const {tensors} = readGgufF64(readFileSync(out))
  const la = tensors.get('token_embd.weight.lora_a')!
  const lb = tensors.get('token_embd.weight.lora_b')!
  assert.equal([la.shape, lb.shape], [[V, 2], [D, 2]])
  for (let t = 0; t < V; t += 37) for (let k = 0; k < 2; k++) assert.is(la.values[t * 2 + k], Math.fround(a[k * V + t]!))
  for (let i = 0; i < lb.values.length; i += 11) assert.ok(Math.abs(lb.values[i]! - 3 * Math.fround(b[i]!)) < 1e-6)
})

test('from a pack: --adapter NAME writes the same file as exporting the folder; --all writes one file per adapter', async () => {
  const pack = join(dir.path, 'p.safetensors')
  await packAdapters({inputs: [join(dir.path, 'a'), join(dir.path, 'b')], out: pack})
  const one = join(dir.path, 'from-pack.gguf')
  await exportAdapters({input: pack, adapter: 'a', base, out: one, format: 'gguf', dtype: 'F16'})
  const direct = join(dir.path, 'direct.gguf')
  await exportAdapters({input: join(dir.path, 'a'), base, out: direct, format: 'gguf', dtype: 'F16'})
  assert.ok(readFileSync(one).equals(readFileSync(direct)))
  const all = join(dir.path, 'all')
  const r = await exportAdapters({input: pack, all: true, base, out: all, format: 'gguf'})
  assert.equal(readdirSync(all).sort(), ['.lora-output.json', 'a.gguf', 'b.gguf'])
  assert.equal(r.adapters.map((x) => [x.name, x.out, x.type]), [['a', join(all, 'a.gguf'), 'F16'], ['b', join(all, 'b.gguf'), 'F16']])
})

test('Q8_0 where rows are whole blocks, F16 (reported) where they are not', async () => {
  const r = await exportAdapters({input: join(dir.path, 'a'), base, out: join(dir.path, 'q8.gguf'), format: 'gguf', dtype: 'q8_0'})
  const types = Object.fromEntries(r.adapters[0]!.tensors.map((t) => [t.name, t.type]))
  assert.equal(types, {'blk.0.attn_q.weight.lora_a': 'Q8_0', 'blk.0.attn_q.weight.lora_b': 'F16', 'blk.0.ffn_up.weight.lora_a': 'Q8_0', 'blk.0.ffn_up.weight.lora_b': 'F16'})
  assert.equal(r.adapters[0]!.fallbacks, [
    {name: 'blk.0.attn_q.weight.lora_b', reason: 'row size (4) is not a multiple of Q8_0 block size (32)'},
    {name: 'blk.0.ffn_up.weight.lora_b', reason: 'row size (2) is not a multiple of Q8_0 block size (32)'},
  ])
})

test('refusals, one line each, no output left: DoRA, full tensors, a module the base lacks, a head tied to the embeddings, flags that do not fit the input', async () => {
  const cases: Array<[string, () => Promise<unknown>, string, RegExp]> = []
  await writePeft(join(dir.path, 'dora'), {r: 4, lora_alpha: 8, rank_pattern: {up_proj: 2}, use_dora: true})
  cases.push(['dora', () => exportAdapters({input: join(dir.path, 'dora'), base, out: join(dir.path, 'x1.gguf'), format: 'gguf'}), 'ADAPTER_DORA_UNSUPPORTED', /DoRA adapter/])
  await writePeft(join(dir.path, 'full'), {r: 4, lora_alpha: 8, rank_pattern: {up_proj: 2}, modules_to_save: ['lm_head']}, [q, up], [{name: 'base_model.model.lm_head.modules_to_save.default.weight', shape: [V, D], values: normal(V * D, 0.1, 'h')}])
  cases.push(['full', () => exportAdapters({input: join(dir.path, 'full'), base, out: join(dir.path, 'x2.gguf'), format: 'gguf'}), 'EXPORT_FULL_TENSORS', /1 full tensors .* a llama\.cpp adapter cannot carry them$/])
  await writePeft(join(dir.path, 'other'), {r: 4, lora_alpha: 8}, [module('model.layers.3.self_attn.q_proj', D, D, 4)])
  cases.push(['missing', () => exportAdapters({input: join(dir.path, 'other'), base, out: join(dir.path, 'x3.gguf'), format: 'gguf'}), 'EXPORT_NO_BASE_TENSOR', /module "model\.layers\.3\.self_attn\.q_proj" targets "model\.layers\.3\.self_attn\.q_proj\.weight", which the base .* does not have/])
  const tied = join(dir.path, 'tied-base')
  await synthesizeBase({out: tied, hidden: D, intermediate: I, layers: 1, vocab: V, dtype: 'F32', seed: 4})
  const w = readSafetensorsF64(join(tied, 'model.safetensors'))
  w.delete('lm_head.weight')
  unlinkSync(join(tied, 'model.safetensors'))
  await writeSafetensors(join(tied, 'model.safetensors'), [...w].map(([name, t]) => ({name, dtype: 'F32' as const, shape: t.shape, data: fromFloat('F32', t.values)})))
  writeFileSync(join(tied, 'config.json'), JSON.stringify({...JSON.parse(readFileSync(join(tied, 'config.json'), 'utf8')), tie_word_embeddings: true}))
  await writePeft(join(dir.path, 'head'), {r: 4, lora_alpha: 8, target_modules: ['lm_head']}, [module('lm_head', D, V, 4)])
  cases.push(['tied', () => exportAdapters({input: join(dir.path, 'head'), base: tied, out: join(dir.path, 'x4.gguf'), format: 'gguf'}), 'EXPORT_TIED_HEAD', /adapts a head the base ties to its embeddings/])
  cases.push(['folder --all', () => exportAdapters({input: join(dir.path, 'a'), all: true, base, out: join(dir.path, 'x5'), format: 'gguf'}), 'BAD_FLAG', /--adapter and --all pick adapters out of a pack; .* is an adapter folder/])
  cases.push(['dtype', () => exportAdapters({input: join(dir.path, 'a'), base, out: join(dir.path, 'x6.gguf'), format: 'gguf', dtype: 'q4_0'}), 'BAD_FLAG', /--dtype q4_0: gguf adapters are written as f32, f16, bf16, q8_0/])
  for (const [name, run, code, message] of cases) {
    const e = await rejection(run())
    assert.is(e.code, code, name)
    assert.match(e.message, message, name)
    assert.not.ok(e.message.includes('\n'), name)
  }
  for (let i = 1; i <= 6; i++) assert.not.ok(existsSync(join(dir.path, `x${i}.gguf`)) || existsSync(join(dir.path, `x${i}`)))
})

test.run()
