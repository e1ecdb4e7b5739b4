/**
 * GPT-2 (Conv1D weights stored [in, out]): merged and written as GGUF, it
 * runs in llama.cpp as the float64 GPT-2 reference computes it (weights
 * transposed before quantizing, output.weight written, the causal-mask
 * buffers dropped); merged into nf4, its weights are [out, in] as
 * bitsandbytes holds them, and config.json types every field as
 * transformers' BitsAndBytesConfig checks it.
 */
import {readFileSync} from 'node:fs'
import {join} from 'node:path'
import {suite} from 'uvu'
import * as assert from 'uvu/assert'
import {fromFloat} from '../../../src/core/dtype.js'
import {loraKeys, peftLoraConfig, writeAdapter} from '../../../src/core/formats/peft-adapter-writer.js'
import {mergeModel} from '../../../src/core/merge/merge-model.js'
import {GGUF_ARCHITECTURES, hfTensorName} from '../../../src/core/models/gguf-names.js'
import {ModelReader} from '../../../src/core/model-io/model-reader.js'
import {roundTrip} from '../../../src/core/quant/schemes.js'
import {Rng} from '../../../src/core/random.js'
import {readGgufF64} from '../../helpers/gguf-reference.js'
import {Gpt2Dims, Gpt2Reference, conv1dWeights, writeGpt2} from '../../helpers/gpt2-reference.js'
import {skipIf, tempDir} from '../../helpers/index.js'
import {agreement, engineDistributions, llamaCppMissing, softmax} from '../../helpers/llama-engine.js'

const test = suite('gguf/gpt2')
const engine = skipIf(test, llamaCppMissing(false))

const dir = tempDir('lora-gpt2-')
const base = join(dir.path, 'base')
const adapter = join(dir.path, 'ad')
const dims: Gpt2Dims = {embd: 64, heads: 2, layers: 2, vocab: 400, positions: 128}
const R = 4

test.before(async () => {
  await writeGpt2(base, dims)
  // PEFT on Conv1D: fan_in_fan_out = true, A [r, in], B [out, r]
  const rng = new Rng(9, 'gpt2-adapter')
  const tensors = []
  for (let i = 0; i < dims.layers; i++)
    for (const [name, inF, outF] of conv1dWeights(dims, i)) {
      const [ka, kb] = loraKeys(`transformer.${name}`)
      tensors.push({name: ka, dtype: 'F32' as const, shape: [R, inF], data: fromFloat('F32', rng.fillNormal(new Float64Array(R * inF), 1 / Math.sqrt(inF)))})
      tensors.push({name: kb, dtype: 'F32' as const, shape: [outF, R], data: fromFloat('F32', rng.fillNormal(new Float64Array(outF * R), 0.05))})
    }
  await writeAdapter(adapter, peftLoraConfig({r: R, lora_alpha: 8, fan_in_fan_out: true, target_modules: ['c_attn', 'c_proj', 'c_fc']}), tensors)
})
test.after(() => dir.cleanup())

function merged(): Gpt2Reference {
  const ref = Gpt2Reference.load(base)
  ref.mergeAdapter(adapter)
  return ref
}

/** The reference carrying a GGUF's decoded weights (Conv1D weights transposed back to [in, out]). */
function fromGguf(ref: Gpt2Reference, file: string): Gpt2Reference {
  const out = ref.clone()
  const arch = GGUF_ARCHITECTURES.gpt2!
  for (const [name, t] of readGgufF64(readFileSync(file)).tensors) {
    const hf = hfTensorName(arch, name)!
    if (hf === 'lm_head.weight') continue
    const conv = /(c_attn|c_proj|c_fc)\.weight$/.test(hf)
    const [rows, cols] = t.shape as [number, number]
    out.setWeight(hf, conv ? Float64Array.from({length: rows * cols}, (_, k) => t.values[(k % rows) * cols + Math.floor(k / rows)]!) : t.values)
  }
  return out
}

const ids = (() => {
  const rng = new Rng(4, 'gpt2-ids')
  return Array.from({length: 3}, () => Array.from({length: 40}, () => rng.int(dims.vocab)))
})()

engine('merge into a GPT-2 base, written as F16 GGUF: llama.cpp computes the float merge; Conv1D weights [out, in], output.weight written, mask buffers dropped', async () => {
  const out = join(dir.path, 'm16.gguf')
  await mergeModel({base, adapters: [{path: adapter}], out, quality: false})
  const {parsed, tensors} = readGgufF64(readFileSync(out))
  assert.is(parsed.kv.get('general.architecture')!.value, 'gpt2')
  assert.equal([parsed.kv.get('tokenizer.ggml.model')!.value, parsed.kv.get('tokenizer.ggml.pre')!.value], ['gpt2', 'gpt-2'])
  assert.equal(tensors.get('blk.0.attn_qkv.weight')!.shape, [3 * dims.embd, dims.embd])
  assert.equal(tensors.get('blk.1.ffn_down.weight')!.shape, [dims.embd, 4 * dims.embd])
  assert.equal(tensors.get('output.weight')!.values, tensors.get('token_embd.weight')!.values)
  // wte, wpe, 12 per block, ln_f weight and bias, output: the two causal-mask buffers are not there
  assert.is(tensors.size, 2 + 12 * dims.layers + 2 + 1)
  const P = ids.map((s) => merged().logits(s).map(softmax))
  const a = agreement(P, await engineDistributions(out, ids, dims.vocab))
  console.log(`\n  GPT-2 F16 GGUF: KL(float merge ‖ llama.cpp) ${a.meanKl.toExponential(2)}, top-1 ${(100 * a.top1).toFixed(1)}%`)
  assert.ok(a.meanKl <= 1e-4, `mean KL ${a.meanKl}`)
})

engine('merge into a GPT-2 base with --quantize q4_0: transposed before quantizing, so llama.cpp computes what the dequantized weights compute', async () => {
  const out = join(dir.path, 'm.gguf')
  const r = await mergeModel({base, adapters: [{path: adapter}], quantize: 'q4_0', out, quality: {rows: 16, seed: 0}})
  assert.equal(r.kept, [])
  assert.ok(r.report!.totals.merge_then_quantize!.adapter_retained! > 0.5, 'the quality report reads the GGUF back in the base\'s layout')
  const ref = merged()
  const P = ids.map((s) => ref.logits(s).map(softmax))
  const Q = ids.map((s) => fromGguf(ref, out).logits(s).map(softmax))
  const L = await engineDistributions(out, ids, dims.vocab)
  const own = agreement(P, Q)
  const cpp = agreement(P, L)
  console.log(`\n  GPT-2 q4_0 GGUF: KL(float ‖ llama.cpp) ${cpp.meanKl.toFixed(5)}, KL(float ‖ own q4_0) ${own.meanKl.toFixed(5)}, top-1 llama.cpp vs own ${(100 * agreement(Q, L).top1).toFixed(1)}%`)
  assert.ok(Math.abs(cpp.meanKl - own.meanKl) <= 0.01)
  assert.ok(agreement(Q, L).meanKl <= 1e-3)
})

test('merge into a GPT-2 base with --quantize nf4: weights stored [out, in] (quant state shape), decoding to the transposed Conv1D merge; config.json typed as BitsAndBytesConfig checks it', async () => {
  const out = join(dir.path, 'nf4')
  await mergeModel({base, adapters: [{path: adapter}], quantize: 'nf4', out, quality: {rows: 16, seed: 0}})
  const floatOut = join(dir.path, 'f32')
  await mergeModel({base, adapters: [{path: adapter}], out: floatOut, quality: false, dtype: 'F32'})
  const q = await ModelReader.open(out)
  const f = await ModelReader.open(floatOut)
  try {
    for (const [name, inF, outF] of conv1dWeights(dims, 1)) {
      const weight = `transformer.${name}.weight`
      assert.equal(q.get(weight).shape, [outF, inF], weight)
      const state = JSON.parse(new TextDecoder().decode(await q.readBytes(`${weight}.quant_state.bitsandbytes__nf4`)))
      assert.equal(state.shape, [outF, inF])
      const stored = await f.readRows(weight, 0, inF) // [in, out], the float merge
      const transposed = Float32Array.from({length: inF * outF}, (_, k) => stored[(k % inF) * outF + Math.floor(k / inF)]!)
      assert.equal(await q.readRows(weight, 0, outF), roundTrip({scheme: 'nf4', blockSize: 64, doubleQuant: false}, [outF, inF], transposed), weight)
    }
  } finally {
    await q.close()
    await f.close()
  }
  // float-strict: every BitsAndBytesConfig field as its post_init checks it, llm_int8_threshold a float literal
  const text = readFileSync(join(out, 'config.json'), 'utf8')
  const config = JSON.parse(text).quantization_config
  assert.match(text, /"llm_int8_threshold": 6\.0,?\n/)
  for (const key of ['load_in_4bit', 'load_in_8bit', 'llm_int8_enable_fp32_cpu_offload', 'llm_int8_has_fp16_weight', 'bnb_4bit_use_double_quant']) {
    assert.is(typeof config[key], 'boolean', key)
    assert.match(text, new RegExp(`"${key}": (true|false)`))
  }
  assert.ok(Array.isArray(config.llm_int8_skip_modules) && config.llm_int8_skip_modules.every((m: unknown) => typeof m === 'string'))
  assert.ok(['float16', 'bfloat16', 'float32'].includes(config.bnb_4bit_compute_dtype))
  assert.ok(['float16', 'float32', 'int8', 'uint8', 'float64', 'bfloat16'].includes(config.bnb_4bit_quant_storage))
  assert.equal([config.bnb_4bit_quant_type, config.quant_method], ['nf4', 'bitsandbytes'])
  // the base's own floats stay floats
  assert.match(text, /"layer_norm_epsilon": 0\.00001/)
})

test.run()
