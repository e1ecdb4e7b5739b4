import {existsSync, readFileSync} from 'node:fs'
import {join} from 'node:path'
import {suite} from 'uvu'
import * as assert from 'uvu/assert'
import {UsageError} from '../../../src/core/errors.js'
import {SafetensorsFile} from '../../../src/core/formats/safetensors-file.js'
import {ModelReader} from '../../../src/core/model-io/model-reader.js'
import {NF4_CODE} from '../../../src/core/quant/nf4.js'
import {quantizeModel} from '../../../src/core/model-io/quantize-model.js'
import {roundTrip} from '../../../src/core/quant/schemes.js'
import {permuteRowsToGguf} from '../../../src/core/models/gguf-names.js'
import {synthesizeBase} from '../../../src/core/synth/base.js'
import {isBlockLinearWeight, quantizeSelector} from '../../../src/core/quant/selection.js'
import {decodeQ4_0, parseGguf} from '../../helpers/gguf-reference.js'
import {rejection, tempDir} from '../../helpers/index.js'
import {FixtureTensor, normal, stored, writeBase} from '../../helpers/merge-fixtures.js'

const test = suite('model-io/quantize-model')

function tensors(): FixtureTensor[] {
  return [
    {name: 'model.embed_tokens.weight', shape: [16, 64], dtype: 'F16', values: normal(16 * 64, 0.1, 'e')},
    {name: 'model.layers.0.input_layernorm.weight', shape: [64], dtype: 'F16', values: normal(64, 0.02, 'n')},
    {name: 'model.layers.0.self_attn.q_proj.weight', shape: [64, 64], dtype: 'F16', values: normal(64 * 64, 0.125, 'q')},
    {name: 'model.layers.0.mlp.down_proj.weight', shape: [64, 96], dtype: 'F16', values: normal(64 * 96, 0.1, 'd')},
    {name: 'model.layers.0.mlp.odd_proj.weight', shape: [8, 40], dtype: 'F16', values: normal(8 * 40, 0.1, 'o')},
    {name: 'lm_head.weight', shape: [16, 64], dtype: 'F16', values: normal(16 * 64, 0.1, 'h')},
  ]
}

test('the default selection: 2-D linear weights inside blocks; --include replaces it, --exclude removes', () => {
  const t = tensors()
  assert.equal(t.filter((x) => isBlockLinearWeight(x.name, x.shape, 'F16')).map((x) => x.name), [
    'model.layers.0.self_attn.q_proj.weight',
    'model.layers.0.mlp.down_proj.weight',
    'model.layers.0.mlp.odd_proj.weight',
  ])
  assert.not.ok(isBlockLinearWeight('transformer.h.0.ln_1.weight', [2, 2], 'F32'))
  assert.ok(isBlockLinearWeight('transformer.h.0.attn.c_attn.weight', [2, 6], 'F32'))
  const sel = quantizeSelector({include: ['lm_head.*', '*.q_proj.*'], exclude: ['*.q_proj.*']})
  assert.equal(t.filter((x) => sel(x.name, x.shape, 'F16')).map((x) => x.name), ['lm_head.weight'])
})

test('nf4 output in the transformers + bitsandbytes layout, decoding to the in-memory round trip', async () => {
  const dir = tempDir()
  try {
    const t = tensors()
    await writeBase(join(dir.path, 'base'), t, {config: {model_type: 'llama'}})
    const r = await quantizeModel({model: join(dir.path, 'base'), out: join(dir.path, 'nf4'), scheme: 'nf4'})
    assert.is(r.quantized, 3)
    assert.equal(r.kept, [])
    const f = await SafetensorsFile.open(join(dir.path, 'nf4', 'model.safetensors'))
    const q = 'model.layers.0.self_attn.q_proj.weight'
    const shape = (n: string) => [f.tensors.get(n)!.dtype, f.tensors.get(n)!.shape]
    assert.equal(shape(q), ['U8', [2048, 1]])
    assert.equal(shape(`${q}.absmax`), ['F32', [64]])
    assert.equal(shape(`${q}.quant_map`), ['F32', [16]])
    assert.equal([...(await f.readTensor(`${q}.quant_map`)).toFloat32()], [...NF4_CODE])
    const state = JSON.parse(new TextDecoder().decode(await f.readBytes(`${q}.quant_state.bitsandbytes__nf4`)))
    assert.equal(state, {quant_type: 'nf4', blocksize: 64, dtype: 'float16', shape: [64, 64]})
    assert.is(new TextDecoder().decode(await f.readBytes(`${q}.quant_state.bitsandbytes__nf4`)), '{"quant_type": "nf4", "blocksize": 64, "dtype": "float16", "shape": [64, 64]}')
    assert.equal(shape('model.embed_tokens.weight'), ['F16', [16, 64]])
    assert.equal(shape('lm_head.weight'), ['F16', [16, 64]])
    await f.close()
    const config = JSON.parse(readFileSync(join(dir.path, 'nf4', 'config.json'), 'utf8'))
    assert.is(config.quantization_config.quant_method, 'bitsandbytes')
    assert.is(config.quantization_config.bnb_4bit_quant_type, 'nf4')
    assert.is(config.quantization_config.load_in_4bit, true)
    // transformers' BitsAndBytesConfig refuses an integer threshold: written as the float literal
    assert.match(readFileSync(join(dir.path, 'nf4', 'config.json'), 'utf8'), /"llm_int8_threshold": 6\.0,\n/)
    const reader = await ModelReader.open(join(dir.path, 'nf4'))
    assert.is(reader.get(q).encoding, 'nf4')
    const expected = roundTrip({scheme: 'nf4', blockSize: 64, doubleQuant: false}, [64, 64], Float32Array.from(stored(t[2]!.values, 'F16')))
    assert.equal(await reader.readRows(q, 0, 64), expected)
    await reader.close()
  } finally {
    dir.cleanup()
  }
})

test('nf4 with double quantization: U8 absmax, nested tensors, and a quant state JSON that Python reads', async () => {
  const dir = tempDir()
  try {
    await writeBase(join(dir.path, 'base'), tensors())
    await quantizeModel({model: join(dir.path, 'base'), out: join(dir.path, 'nf4'), scheme: 'nf4', doubleQuant: true, blockSize: 128})
    const f = await SafetensorsFile.open(join(dir.path, 'nf4', 'model.safetensors'))
    const d = 'model.layers.0.mlp.down_proj.weight'
    assert.equal([f.tensors.get(`${d}.absmax`)!.dtype, f.tensors.get(`${d}.absmax`)!.shape], ['U8', [48]])
    assert.equal(f.tensors.get(`${d}.nested_absmax`)!.shape, [1])
    assert.equal(f.tensors.get(`${d}.nested_quant_map`)!.shape, [256])
    const text = new TextDecoder().decode(await f.readBytes(`${d}.quant_state.bitsandbytes__nf4`))
    const state = JSON.parse(text)
    assert.equal({...state, nested_offset: 0}, {quant_type: 'nf4', blocksize: 128, dtype: 'float16', shape: [64, 96], nested_blocksize: 256, nested_dtype: 'float32', nested_offset: 0})
    assert.ok(state.nested_offset > 0.05 && state.nested_offset < 1)
    assert.match(text, /^\{.*\} *$/, 'only trailing spaces after the object (json.loads accepts them)')
    await f.close()
    const reader = await ModelReader.open(join(dir.path, 'nf4'))
    assert.equal([reader.get(d).encoding, reader.get(d).blockSize, reader.get(d).doubleQuant], ['nf4', 128, true])
    await reader.close()
  } finally {
    dir.cleanup()
  }
})

test('q4_0 output is a GGUF file llama.cpp loads, by an independent reader: llama.cpp names, q/k rows permuted, norms F32, rows that are not whole blocks stay F16', async () => {
  const dir = tempDir()
  try {
    // 2 heads of 64, MLP rows of 40 (not whole Q4_0 blocks)
    await synthesizeBase({out: join(dir.path, 'base'), hidden: 128, intermediate: 40, layers: 1, vocab: 400, dtype: 'F16', seed: 3})
    const out = join(dir.path, 'm.gguf')
    const r = await quantizeModel({model: join(dir.path, 'base'), out, scheme: 'q4_0'})
    assert.equal(r.kept, [{name: 'model.layers.0.mlp.down_proj.weight', reason: 'row size (40) is not a multiple of Q4_0 block size (32)'}])
    const buf = readFileSync(out)
    const g = parseGguf(buf)
    assert.is(g.magic, 'GGUF')
    assert.is(g.version, 3)
    const kv = (k: string) => g.kv.get(k)?.value
    assert.equal([kv('general.architecture'), kv('general.type'), kv('general.file_type'), kv('general.alignment')], ['llama', 'model', 2, 32])
    assert.equal([kv('llama.embedding_length'), kv('llama.attention.head_count'), kv('llama.feed_forward_length'), kv('llama.block_count')], [128, 2, 40, 1])
    assert.equal([kv('tokenizer.ggml.model'), (kv('tokenizer.ggml.tokens') as string[]).length], ['llama', 400])
    const byName = new Map(g.tensors.map((x) => [x.name, x]))
    const type = (n: string) => byName.get(n)!.type
    assert.equal(
      g.tensors.map((x) => x.name).sort(),
      ['output.weight', 'output_norm.weight', 'token_embd.weight', ...['attn_k', 'attn_norm', 'attn_output', 'attn_q', 'attn_v', 'ffn_down', 'ffn_gate', 'ffn_norm', 'ffn_up'].map((t) => `blk.0.${t}.weight`)].sort(),
    )
    assert.equal([type('blk.0.attn_norm.weight'), type('output_norm.weight'), type('blk.0.ffn_down.weight'), type('token_embd.weight'), type('blk.0.attn_q.weight')], [0, 0, 1, 1, 2])
    for (const x of g.tensors) assert.is(Number(x.offset) % 32, 0)
    // attn_q: the base's rows in llama.cpp's RoPE order, then Q4_0 (decoded independently)
    const q = byName.get('blk.0.attn_q.weight')!
    assert.equal(q.ne.map(Number), [128, 128])
    const start = g.dataStart + Number(q.offset)
    const decoded = decodeQ4_0(buf.subarray(start, start + 128 * 4 * 18), 128 * 128)
    const base = await ModelReader.open(join(dir.path, 'base'))
    const original = await base.readRows('model.layers.0.self_attn.q_proj.weight', 0, 128)
    await base.close()
    assert.equal(decoded, [...roundTrip({scheme: 'q4_0', blockSize: 32, doubleQuant: false}, [128, 128], permuteRowsToGguf(original, 2, 128))])
  } finally {
    dir.cleanup()
  }
})

test('q4_0 GGUF of a base llama.cpp could not run is refused with one line: no config.json, no hyperparameters, no tokenizer', async () => {
  const dir = tempDir()
  try {
    await writeBase(join(dir.path, 'bare'), tensors(), {config: {model_type: 'llama'}})
    const e1 = await rejection(quantizeModel({model: join(dir.path, 'bare'), out: join(dir.path, 'a.gguf'), scheme: 'q4_0'}))
    assert.is(e1.code, 'CONFIG_INVALID')
    assert.match(e1.message, /config\.json: hidden_size is missing, and llama\.cpp needs it$/)
    await synthesizeBase({out: join(dir.path, 'notok'), hidden: 64, intermediate: 64, layers: 1, vocab: 100, dtype: 'F32', seed: 1})
    const e2 = await rejection(quantizeModel({model: join(dir.path, 'notok'), out: join(dir.path, 'b.gguf'), scheme: 'q4_0'}))
    assert.is(e2.code, 'TOKENIZER_MISSING')
    assert.match(e2.message, /no tokenizer\.json or tokenizer\.model, and llama\.cpp needs the tokenizer inside the GGUF; .*--base model\.gguf/)
    assert.not.ok(existsSync(join(dir.path, 'a.gguf')) || existsSync(join(dir.path, 'b.gguf')))
  } finally {
    dir.cleanup()
  }
})

test('int4 output: qweight/scales/zeros per module and lora metadata', async () => {
  const dir = tempDir()
  try {
    await writeBase(join(dir.path, 'base'), tensors())
    const r = await quantizeModel({model: join(dir.path, 'base'), out: join(dir.path, 'int4'), scheme: 'int4', blockSize: 32})
    assert.equal(r.kept.map((k) => k.name), ['model.layers.0.mlp.odd_proj.weight'])
    const f = await SafetensorsFile.open(join(dir.path, 'int4', 'model.safetensors'))
    const m = 'model.layers.0.mlp.down_proj'
    assert.equal([f.tensors.get(`${m}.qweight`)!.dtype, f.tensors.get(`${m}.qweight`)!.shape], ['U8', [64, 48]])
    assert.equal([f.tensors.get(`${m}.scales`)!.dtype, f.tensors.get(`${m}.scales`)!.shape], ['F16', [64, 3]])
    assert.equal([f.tensors.get(`${m}.zeros`)!.dtype, f.tensors.get(`${m}.zeros`)!.shape], ['U8', [64, 3]])
    assert.not.ok(f.tensors.has(`${m}.weight`))
    assert.is(f.metadata.get('lora.quantization'), 'int4')
    assert.is(f.metadata.get('lora.group_size'), '32')
    await f.close()
  } finally {
    dir.cleanup()
  }
})

test('impossible flags and already-quantized inputs are usage errors; nothing is written', async () => {
  const dir = tempDir()
  try {
    await writeBase(join(dir.path, 'base'), tensors())
    const fails = async (options: Parameters<typeof quantizeModel>[0], pattern: RegExp) => {
      try {
        await quantizeModel(options)
        assert.unreachable()
      } catch (error) {
        assert.instance(error, UsageError)
        assert.match((error as Error).message, pattern)
      }
      assert.not.ok(existsSync(options.out))
    }
    const base = join(dir.path, 'base')
    await fails({model: base, out: join(dir.path, 'a'), scheme: 'nf4', blockSize: 48}, /--block-size: block size 48 is not one bitsandbytes supports/)
    await fails({model: base, out: join(dir.path, 'b'), scheme: 'q4_0', format: 'safetensors'}, /--format safetensors: q4_0 is written as gguf/)
    await fails({model: base, out: join(dir.path, 'c'), scheme: 'int4', doubleQuant: true}, /--double-quant applies to nf4 only/)
    await quantizeModel({model: base, out: join(dir.path, 'q'), scheme: 'int4', blockSize: 32})
    await fails({model: join(dir.path, 'q'), out: join(dir.path, 'd'), scheme: 'nf4'}, /already int4; merge into it with `lora merge --from-quantized`/)
  } finally {
    dir.cleanup()
  }
})

test.run()
