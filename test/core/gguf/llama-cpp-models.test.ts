/**
 * llama.cpp (node-llama-cpp 3.21.1) runs the GGUF models `lora` writes, and
 * its next-token distributions over eval.txt match the float64 reference of
 * the same model: stories260K merged with lora_medium (from the Hugging Face
 * folder and from llama.cpp's own GGUF), written as q4_0 and as F16;
 * synthetic Llama and Qwen2 bases; a Q8_0 GGUF base.
 *
 * For q4_0 the bar is the project's own dequantized weights: llama.cpp must
 * lose no more than they do (mean KL within 0.01 nats) and pick the same
 * top-1 token at ≥ 95% of positions.
 */
import {readFileSync} from 'node:fs'
import {join} from 'node:path'
import {suite} from 'uvu'
import * as assert from 'uvu/assert'
import {GgufFile} from '../../../src/core/formats/gguf-reader.js'
import {GgufWriter} from '../../../src/core/formats/gguf-writer.js'
import {inspectPath} from '../../../src/core/inspect.js'
import {mergeModel} from '../../../src/core/merge/merge-model.js'
import {quantizeQ8_0} from '../../../src/core/quant/q8-0.js'
import {quantizeModel} from '../../../src/core/model-io/quantize-model.js'
import {synthesizeAdapters} from '../../../src/core/synth/adapters.js'
import {SynthArchitecture, synthesizeBase} from '../../../src/core/synth/base.js'
import {Rng} from '../../../src/core/random.js'
import {referenceFromGguf} from '../../helpers/gguf-model-reference.js'
import {parseGguf} from '../../helpers/gguf-reference.js'
import {skipIf, tempDir} from '../../helpers/index.js'
import {SECONDARY_STORIES, STORIES, agreement, engineDistributions, evalStories, evalTokenIds, llamaCppMissing, openLlama, softmax} from '../../helpers/llama-engine.js'
import {LlamaReference} from '../../helpers/llama-reference.js'

const test = suite('gguf/llama.cpp runs lora\'s GGUF models')
const real = skipIf(test, llamaCppMissing())

const dir = tempDir('lora-llama-cpp-')
const HF = join(STORIES, 'hf')
const GGUF = join(STORIES, 'gguf/stories260K.gguf')
const MEDIUM = join(STORIES, 'adapters/lora_medium')
test.after(() => dir.cleanup())

const distributions = (model: LlamaReference, ids: number[][]) => ids.map((s) => model.logits(s).map(softmax))

let cache: {ids: number[][]; merged: LlamaReference; P: Float64Array[][]} | undefined
/** eval.txt token ids and the float64 reference of stories260K + lora_medium. */
async function mergedReference() {
  if (!cache) {
    const ids = await evalTokenIds()
    const merged = await LlamaReference.fromHfFolder(HF)
    await merged.mergeAdapter(MEDIUM)
    cache = {ids, merged, P: distributions(merged, ids)}
  }
  return cache
}

/** llama.cpp on a q4_0 file against the project's own dequantized weights, both measured from the float merge. */
async function checkQ4_0(file: string, label: string): Promise<void> {
  const {ids, merged, P} = await mergedReference()
  const Q = distributions(referenceFromGguf(merged, file).model, ids)
  const L = await engineDistributions(file, ids, merged.config.vocab)
  const own = agreement(P, Q)
  const engine = agreement(P, L)
  const top = agreement(Q, L)
  console.log(
    `\n  ${label}: KL(float ‖ llama.cpp) ${engine.meanKl.toFixed(5)}, KL(float ‖ own q4_0) ${own.meanKl.toFixed(5)}, difference ${(engine.meanKl - own.meanKl).toExponential(2)}; top-1 llama.cpp vs own q4_0 ${(100 * top.top1).toFixed(2)}% of ${top.positions}`,
  )
  assert.ok(Math.abs(engine.meanKl - own.meanKl) <= 0.01, `${label}: KL ${engine.meanKl} vs ${own.meanKl}`)
  assert.ok(top.top1 >= 0.95, `${label}: top-1 ${top.top1}`)
}

real('merge --base hf --adapter lora_medium --quantize q4_0: llama.cpp loads it and loses what our own q4_0 loses', async () => {
  const out = join(dir.path, 'm.gguf')
  const r = await mergeModel({base: HF, adapters: [{path: MEDIUM}], quantize: 'q4_0', out, quality: false})
  assert.equal(
    r.kept.map((k) => k.name),
    [0, 1, 2, 3, 4].map((l) => `model.layers.${l}.mlp.down_proj.weight`),
  )
  await checkQ4_0(out, 'hf → q4_0')
})

real('the same with --base stories260K.gguf (llama.cpp\'s own GGUF): its metadata and tokenizer kept, the same q4_0 bytes as from the Hugging Face folder', async () => {
  const out = join(dir.path, 'mg.gguf')
  await mergeModel({base: GGUF, adapters: [{path: MEDIUM}], quantize: 'q4_0', out, quality: false})
  await checkQ4_0(out, 'gguf → q4_0')
  const a = parseGguf(readFileSync(out))
  const source = parseGguf(readFileSync(GGUF))
  for (const key of ['tokenizer.ggml.tokens', 'tokenizer.ggml.scores', 'llama.context_length', 'llama.rope.dimension_count']) assert.equal(a.kv.get(key), source.kv.get(key), key)
  assert.is(a.kv.get('general.file_type')!.value, 2)
  // the q/k rows of the delta follow the base's permuted rows: identical blocks either way
  const fromHf = await GgufFile.open(join(dir.path, 'm.gguf'))
  const fromGguf = await GgufFile.open(out)
  try {
    for (const name of ['blk.0.attn_q.weight', 'blk.3.attn_k.weight', 'blk.2.ffn_up.weight']) {
      assert.ok(Buffer.from(await fromHf.readBytes(name)).equals(Buffer.from(await fromGguf.readBytes(name))), name)
    }
  } finally {
    await fromHf.close()
    await fromGguf.close()
  }
})

real('merge --out m16.gguf (no --quantize): an F16 GGUF, mean KL to the float merge ≤ 1e-4; its converted tokenizer splits eval.txt as llama.cpp\'s own does', async () => {
  const out = join(dir.path, 'm16.gguf')
  const r = await mergeModel({base: HF, adapters: [{path: MEDIUM}], out, quality: false})
  assert.equal([r.format, r.dtype], ['gguf', 'F16'])
  const g = parseGguf(readFileSync(out))
  assert.is(g.kv.get('general.file_type')!.value, 1)
  const types = new Map(g.tensors.map((t) => [t.name, t.type]))
  assert.equal([types.get('blk.0.attn_q.weight'), types.get('blk.0.attn_norm.weight'), types.get('output_norm.weight')], [1, 0, 0])
  const {ids, merged, P} = await mergedReference()
  const a = agreement(P, await engineDistributions(out, ids, merged.config.vocab))
  console.log(`\n  hf → F16 GGUF: KL(float ‖ llama.cpp) ${a.meanKl.toExponential(2)}, top-1 ${(100 * a.top1).toFixed(2)}%`)
  assert.ok(a.meanKl <= 1e-4, `mean KL ${a.meanKl}`)
  const session = await openLlama(out)
  try {
    const stories = evalStories()
    for (const [i, story] of stories.entries()) assert.equal([session.bos!, ...session.tokenize(story)], ids[i], `story ${i}`)
  } finally {
    await session.close()
  }
})

real('a Q8_0 GGUF base: llama.cpp decodes our Q8_0 as we do, and merge --base q8.gguf --quantize q4_0 runs', async () => {
  // stories260K.gguf with every weight whose rows are whole blocks in Q8_0
  const source = await GgufFile.open(GGUF)
  const q8 = join(dir.path, 'q8.gguf')
  try {
    const specs = [...source.tensors.values()].map((t) => ({name: t.name, shape: t.shape, type: t.shape.length === 2 && t.shape[1]! % 32 === 0 ? ('Q8_0' as const) : ('F32' as const)}))
    const writer = await GgufWriter.create(q8, [...source.kv.values()].filter((e) => e.key !== 'general.alignment'), specs)
    for (const s of specs) {
      const bytes = await source.readBytes(s.name)
      const f32 = new Float32Array(bytes.buffer, bytes.byteOffset, bytes.byteLength / 4)
      await writer.writeTensor(s.name, s.type === 'Q8_0' ? quantizeQ8_0(f32) : bytes)
    }
    await writer.commit()
  } finally {
    await source.close()
  }
  // a secondary check: the first stories of eval.txt
  const full = await mergedReference()
  const ids = full.ids.slice(0, SECONDARY_STORIES)
  const P = full.P.slice(0, SECONDARY_STORIES)
  const merged = full.merged
  const base = await LlamaReference.fromHfFolder(HF)
  const decoded = distributions(referenceFromGguf(base, q8).model, ids)
  const own = agreement(decoded, await engineDistributions(q8, ids, base.config.vocab))
  console.log(`\n  Q8_0 base: KL(our decoding ‖ llama.cpp) ${own.meanKl.toExponential(2)}, top-1 ${(100 * own.top1).toFixed(2)}%`)
  // llama.cpp rounds the activations to 8 bits for Q8_0 (and Q4_0) dot products: that, not the weights, is the 1e-4 scale here;
  // a wrong scale or layout would be orders of magnitude more
  assert.ok(own.meanKl <= 1e-3, `Q8_0 decode: mean KL ${own.meanKl}`)
  assert.ok(own.top1 >= 0.98, `Q8_0 decode: top-1 ${own.top1}`)
  const out = join(dir.path, 'mq8.gguf')
  await mergeModel({base: q8, adapters: [{path: MEDIUM}], quantize: 'q4_0', out, quality: false})
  const Q = distributions(referenceFromGguf(merged, out).model, ids)
  const L = await engineDistributions(out, ids, base.config.vocab)
  assert.ok(Math.abs(agreement(P, L).meanKl - agreement(P, Q).meanKl) <= 0.01)
  assert.ok(agreement(Q, L).top1 >= 0.95)
})

real('quantize --scheme q8_0 of the Hugging Face folder: llama.cpp computes what our Q8_0 decoding computes', async () => {
  const out = join(dir.path, 'q8-hf.gguf')
  await quantizeModel({model: HF, scheme: 'q8_0', out})
  const ids = (await mergedReference()).ids.slice(0, SECONDARY_STORIES)
  const base = await LlamaReference.fromHfFolder(HF)
  const own = distributions(referenceFromGguf(base, out).model, ids)
  const a = agreement(own, await engineDistributions(out, ids, base.config.vocab))
  console.log(`\n  hf → q8_0: KL(our decoding ‖ llama.cpp) ${a.meanKl.toExponential(2)}, top-1 ${(100 * a.top1).toFixed(2)}%`)
  assert.ok(a.meanKl <= 1e-3, `mean KL ${a.meanKl}`)
  assert.ok(a.top1 >= 0.98, `top-1 ${a.top1}`)
})

/** A synthetic base merged with a synthetic adapter and written as q4_0: llama.cpp against the dequantized reference on random token ids. */
async function syntheticQ4_0(arch: SynthArchitecture): Promise<void> {
  const root = join(dir.path, `synth-${arch}`)
  const dims = {hidden: 128, intermediate: 256, layers: 2, vocab: 512}
  await synthesizeBase({out: join(root, 'base'), arch, ...dims, dtype: 'F16', seed: 7})
  await synthesizeAdapters({out: join(root, 'ad'), ...dims, count: 1, ranks: [8], targets: ['q_proj', 'k_proj', 'v_proj', 'o_proj', 'up_proj'], dtype: 'F32', seed: 7, sharedSubspace: 0})
  const out = join(root, 'm.gguf')
  await mergeModel({base: join(root, 'base'), adapters: [{path: join(root, 'ad', 'adapter-0000')}], quantize: 'q4_0', out, quality: false})
  const merged = await LlamaReference.fromHfFolder(join(root, 'base'))
  await merged.mergeAdapter(join(root, 'ad', 'adapter-0000'))
  const rng = new Rng(3, 'ids', arch)
  const ids = Array.from({length: 3}, () => Array.from({length: 48}, () => rng.int(dims.vocab)))
  const Q = distributions(referenceFromGguf(merged, out).model, ids)
  const L = await engineDistributions(out, ids, dims.vocab)
  const a = agreement(Q, L)
  console.log(`\n  synthetic ${arch} → q4_0: KL(own q4_0 ‖ llama.cpp) ${a.meanKl.toExponential(2)}, top-1 ${(100 * a.top1).toFixed(1)}%`)
  assert.ok(a.meanKl <= 1e-3, `${arch}: mean KL ${a.meanKl}`)
  // random weights give flat distributions whose near-ties flip under llama.cpp's 8-bit activations
  assert.ok(a.top1 >= 0.9, `${arch}: top-1 ${a.top1}`)
  const report = await inspectPath(out)
  assert.equal([report.kind, report.gguf!.architecture, report.gguf!.file_type], ['gguf-model', arch, 'MOSTLY_Q4_0'])
}

real('a synthetic Llama base (lora synth base) merged and written as q4_0 runs in llama.cpp as the reference computes it', () => syntheticQ4_0('llama'))
real('a synthetic Qwen2 base (q/k/v biases, byte-level tokenizer) merged and written as q4_0 runs in llama.cpp as the reference computes it', () => syntheticQ4_0('qwen2'))

real('lora inspect reads every GGUF written above: kind, tensors and types as an independent reader sees them', async () => {
  for (const name of ['m.gguf', 'mg.gguf', 'm16.gguf', 'q8.gguf']) {
    const file = join(dir.path, name)
    const report = await inspectPath(file)
    const parsed = parseGguf(readFileSync(file))
    assert.is(report.kind, 'gguf-model', name)
    assert.equal(report.tensors.map((t) => t.name), parsed.tensors.map((t) => t.name), name)
    assert.equal(report.tensors.map((t) => t.shape), parsed.tensors.map((t) => t.ne.map(Number).reverse()), name)
    assert.is(report.gguf!.tokenizer!.tokens, 512)
  }
})

real('quantize --scheme q4_0 of the Hugging Face folder writes what merge writes with a zero-weight adapter', async () => {
  const out = join(dir.path, 'q.gguf')
  await quantizeModel({model: HF, scheme: 'q4_0', out})
  const zero = join(dir.path, 'mz.gguf')
  await mergeModel({base: HF, adapters: [{path: MEDIUM, weight: 0}], quantize: 'q4_0', out: zero, quality: false})
  assert.ok(readFileSync(out).equals(readFileSync(zero)))
})

test.run()
