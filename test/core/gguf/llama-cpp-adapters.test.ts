/**
 * llama.cpp applies the GGUF LoRA adapters `lora export` writes, unmerged,
 * on llama.cpp's own stories260K GGUF, and computes what PEFT computes: the
 * float64 reference of the merged model, over eval.txt. Per-module scaling
 * (rank_pattern, alpha_pattern, rsLoRA) is folded into lora_b; embedding
 * LoRA and per-adapter scales work as PEFT's.
 */
import {mkdirSync, readFileSync, writeFileSync} from 'node:fs'
import {join} from 'node:path'
import {suite} from 'uvu'
import * as assert from 'uvu/assert'
import {fromFloat} from '../../../src/core/dtype.js'
import {exportAdapters} from '../../../src/core/export/export-adapters.js'
import {loraEmbeddingKeys, loraKeys, peftLoraConfig, writeAdapter} from '../../../src/core/formats/peft-adapter-writer.js'
import {writeSafetensors} from '../../../src/core/formats/safetensors-writer.js'
import {Rng} from '../../../src/core/random.js'
import {skipIf, tempDir} from '../../helpers/index.js'
import {SECONDARY_STORIES, STORIES, agreement, engineDistributions, evalTokenIds, llamaCppMissing, softmax} from '../../helpers/llama-engine.js'
import {LlamaReference, readSafetensorsF64} from '../../helpers/llama-reference.js'

const test = suite('gguf/llama.cpp applies lora\'s GGUF adapters')
const real = skipIf(test, llamaCppMissing())

const dir = tempDir('lora-llama-cpp-adapters-')
const HF = join(STORIES, 'hf')
const GGUF = join(STORIES, 'gguf/stories260K.gguf')
const PROJECTIONS = ['self_attn.q_proj', 'self_attn.k_proj', 'self_attn.v_proj', 'self_attn.o_proj', 'mlp.gate_proj', 'mlp.up_proj', 'mlp.down_proj']
test.after(() => dir.cleanup())

const distributions = (model: LlamaReference, ids: number[][]) => ids.map((s) => model.logits(s).map(softmax))

/** Export `adapter` for the stories260K base and compare llama.cpp (base GGUF + adapter) with the float64 merge. */
async function check(label: string, reference: LlamaReference | Float64Array[][], adapters: Array<{path: string; scale?: number}>, stories?: number, bound = 1e-4): Promise<void> {
  const ids = await evalTokenIds(stories)
  const P = Array.isArray(reference) ? reference : distributions(reference, ids)
  const L = await engineDistributions(GGUF, ids, 512, adapters)
  const a = agreement(P, L)
  console.log(`\n  ${label}: KL(float merge ‖ llama.cpp + adapter) ${a.meanKl.toExponential(2)}, top-1 ${(100 * a.top1).toFixed(2)}% of ${a.positions}`)
  assert.ok(a.meanKl <= bound, `${label}: mean KL ${a.meanKl}`)
}

async function exportTo(adapter: string, name: string, dtype = 'F32', base = HF): Promise<string> {
  const out = join(dir.path, `${name}.gguf`)
  await exportAdapters({input: adapter, base, out, format: 'gguf', dtype})
  return out
}

for (const name of ['lora_small', 'lora_medium']) {
  real(`export ${name}: llama.cpp with the adapter computes the float merge (mean KL ≤ 1e-4)`, async () => {
    const path = join(STORIES, 'adapters', name)
    const merged = await LlamaReference.fromHfFolder(HF)
    await merged.mergeAdapter(path)
    await check(name, merged, [{path: await exportTo(path, name)}])
  })
}

real('an adapter with rank_pattern, alpha_pattern and rsLoRA: each module\'s own scaling reaches llama.cpp (one global alpha would not)', async () => {
  const rng = new Rng(12, 'patterns')
  const config = peftLoraConfig({
    r: 8,
    lora_alpha: 6,
    use_rslora: true,
    rank_pattern: {q_proj: 4, 'layers.2.mlp.down_proj': 2},
    alpha_pattern: {v_proj: 24, 'model.layers.4.self_attn.k_proj': 3},
    target_modules: ['q_proj', 'k_proj', 'v_proj', 'o_proj', 'gate_proj', 'up_proj', 'down_proj'],
  })
  const rankOf = (m: string) => (m.endsWith('q_proj') ? 4 : m === 'model.layers.2.mlp.down_proj' ? 2 : 8)
  const base = readSafetensorsF64(join(HF, 'model.safetensors'))
  const tensors = []
  for (let l = 0; l < 5; l++)
    for (const p of PROJECTIONS) {
      const module = `model.layers.${l}.${p}`
      const [out, inF] = base.get(`${module}.weight`)!.shape as [number, number]
      const r = rankOf(module)
      const [ka, kb] = loraKeys(module)
      tensors.push({name: ka, dtype: 'F32' as const, shape: [r, inF], data: fromFloat('F32', rng.fillNormal(new Float64Array(r * inF), 1 / Math.sqrt(inF)))})
      tensors.push({name: kb, dtype: 'F32' as const, shape: [out, r], data: fromFloat('F32', rng.fillNormal(new Float64Array(out * r), 0.015))})
    }
  const path = join(dir.path, 'patterns')
  await writeAdapter(path, config, tensors)
  const merged = await LlamaReference.fromHfFolder(HF)
  await merged.mergeAdapter(path)
  const ids = await evalTokenIds()
  const P = distributions(merged, ids)
  await check('rank_pattern + alpha_pattern + rsLoRA', P, [{path: await exportTo(path, 'patterns')}])
  // what a single alpha/r for the file (llama.cpp's convert_lora_to_gguf.py) computes instead
  const flat = join(dir.path, 'patterns-flat')
  await writeAdapter(flat, {...config, use_rslora: false, alpha_pattern: {}, rank_pattern: {q_proj: 4, 'layers.2.mlp.down_proj': 2}}, tensors)
  const naive = await LlamaReference.fromHfFolder(HF)
  await naive.mergeAdapter(flat)
  const gap = agreement(P.slice(0, SECONDARY_STORIES), distributions(naive, ids.slice(0, SECONDARY_STORIES))).meanKl
  console.log(`\n  one alpha for the whole file instead: KL ${gap.toFixed(4)}`)
  assert.ok(gap > 0.01, `the patterns must matter for this adapter (KL ${gap})`)
})

real('embedding LoRA (lora_embedding_A/B on embed_tokens) and two adapters at scales 0.5 each, as PEFT computes them', async () => {
  const rng = new Rng(13, 'embedding')
  const r = 4
  const scale = 16 / r
  const a = rng.fillNormal(new Float64Array(r * 512), 1)
  const b = rng.fillNormal(new Float64Array(64 * r), 0.02)
  const [ea, eb] = loraEmbeddingKeys('model.embed_tokens')
  const path = join(dir.path, 'embedding')
  await writeAdapter(path, peftLoraConfig({r, lora_alpha: 16, target_modules: ['embed_tokens']}), [
    {name: ea, dtype: 'F32', shape: [r, 512], data: fromFloat('F32', a)},
    {name: eb, dtype: 'F32', shape: [64, r], data: fromFloat('F32', b)},
  ])
  // the reference with an untied head (llama.cpp's GGUF keeps output.weight apart; PEFT's embedding LoRA changes only the lookup)
  const untied = join(dir.path, 'untied')
  const weights = readSafetensorsF64(join(HF, 'model.safetensors'))
  weights.set('lm_head.weight', weights.get('model.embed_tokens.weight')!)
  mkdirSync(untied)
  await writeSafetensors(join(untied, 'model.safetensors'), [...weights].map(([name, t]) => ({name, dtype: 'F32' as const, shape: t.shape, data: fromFloat('F32', t.values)})), {metadata: {format: 'pt'}})
  const config = JSON.parse(readFileSync(join(HF, 'config.json'), 'utf8'))
  writeFileSync(join(untied, 'config.json'), JSON.stringify({...config, tie_word_embeddings: false}))
  const merged = await LlamaReference.fromHfFolder(untied)
  const embed = merged.weight('model.embed_tokens.weight').slice()
  // PEFT Embedding: ΔW = (B·A)ᵀ · scaling, [num_embeddings, dim]
  for (let t = 0; t < 512; t++) for (let d = 0; d < 64; d++) for (let k = 0; k < r; k++) embed[t * 64 + d]! += scale * b[d * r + k]! * a[k * 512 + t]!
  merged.setWeight('model.embed_tokens.weight', embed)
  // secondary checks: the first stories of eval.txt
  await check('embedding LoRA', merged, [{path: await exportTo(path, 'embedding', 'F32', GGUF)}], SECONDARY_STORIES)

  const half = await LlamaReference.fromHfFolder(HF)
  await half.mergeAdapter(join(STORIES, 'adapters/lora_small'), 0.5)
  await half.mergeAdapter(join(STORIES, 'adapters/lora_medium'), 0.5)
  const small = await exportTo(join(STORIES, 'adapters/lora_small'), 'small-2')
  const medium = await exportTo(join(STORIES, 'adapters/lora_medium'), 'medium-2')
  await check('lora_small × 0.5 + lora_medium × 0.5', half, [{path: small, scale: 0.5}, {path: medium, scale: 0.5}], SECONDARY_STORIES)
})

real('F16, BF16 and Q8_0 exports load and stay within 1e-4; exports for the Hugging Face folder and for the GGUF base are the same bytes', async () => {
  const path = join(STORIES, 'adapters/lora_medium')
  const merged = await LlamaReference.fromHfFolder(HF)
  await merged.mergeAdapter(path)
  // secondary checks: the first stories of eval.txt
  const P = distributions(merged, await evalTokenIds(SECONDARY_STORIES))
  for (const dtype of ['F16', 'BF16', 'Q8_0']) await check(`lora_medium as ${dtype}`, P, [{path: await exportTo(path, `medium-${dtype}`, dtype)}], SECONDARY_STORIES)
  const fromHf = await exportTo(path, 'medium-hf')
  const fromGguf = await exportTo(path, 'medium-gguf', 'F32', GGUF)
  assert.ok(readFileSync(fromHf).equals(readFileSync(fromGguf)))
})

test.run()
