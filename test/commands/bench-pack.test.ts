/**
 * Issue 15, part 8: `bench --pack` serves any pack. Module shapes come from
 * the pack (grouped-query k/v, non-square q/o, GPT-2's fused c_attn, OPT's
 * names), the synthetic base is made to match, and every strategy is held
 * to the float64 reference (the run's --tolerance gate: exit 1 otherwise).
 */
import {join} from 'node:path'
import {suite} from 'uvu'
import * as assert from 'uvu/assert'
import {lora, writeAdapter} from '../core/errors/fixtures.js'
import {REAL_ADAPTERS, realAdaptersMissing, runCli, skipIf, tempDir} from '../helpers/index.js'

const test = suite('commands: bench --pack of any block')
const tmp = tempDir('lora-bench-pack-')
test.after(() => tmp.cleanup())

/** Every strategy, one short round: the run checks each against the float64 reference before timing. */
const RUN = ['--layers', '1', '--strategies', 'gather,segment,mask,merged,shared-b', '--batch', '3', '--rounds', '1', '--steps', '1', '--json']

async function benchPack(name: string, adapters: string[], extra: string[] = []): Promise<{config: {block?: {architecture: string; shapes: Record<string, number[]>}; targets: string[]}; results: Array<{strategy: string; max_abs_error: number}>}> {
  const pack = join(tmp.path, `${name}.safetensors`)
  const packed = await runCli(['pack', ...adapters, '--out', pack, '--json'])
  assert.is(packed.status, 0, packed.stdout)
  const r = await runCli(['bench', '--pack', pack, ...RUN, ...extra])
  assert.is(r.status, 0, `${name}: ${r.stdout}${r.stderr}`)
  const report = JSON.parse(r.stdout)
  assert.equal(report.results.map((x: {strategy: string}) => x.strategy).sort(), ['base', 'gather', 'mask', 'merged', 'segment', 'shared-b'])
  return report
}

test('a synthetic pack of grouped-query k/v and a non-square q/o (q 16 out of 8, k/v 4)', async () => {
  const L = 'model.layers.0.self_attn'
  const tensors = [...lora(`${L}.q_proj`, 2, 8, 16), ...lora(`${L}.k_proj`, 2, 8, 4), ...lora(`${L}.v_proj`, 2, 8, 4), ...lora(`${L}.o_proj`, 2, 16, 8)]
  // non-zero values, so the check compares real deltas
  for (const t of tensors) t.data = new Uint8Array(Float32Array.from({length: t.shape[0]! * t.shape[1]!}, (_, i) => Math.sin(i + t.name.length) * 0.1).buffer)
  const dirs = ['a', 'b'].map((n) => writeAdapter(join(tmp.path, n), tensors, {r: 2, lora_alpha: 4, target_modules: ['q_proj', 'k_proj', 'v_proj', 'o_proj']}))
  const report = await benchPack('gqa', dirs, ['--intermediate', '12', '--shared-k', '2'])
  assert.equal(report.config.block, {architecture: 'llama', shapes: {q_proj: [16, 8], k_proj: [4, 8], v_proj: [4, 8], o_proj: [8, 16], gate_proj: [12, 8], up_proj: [12, 8], down_proj: [8, 12]}})
})

const real = skipIf(test, realAdaptersMissing())

real('Qwen2.5 (GQA v_proj [128, 896]) and Gemma 3 (q [1024, 640], o [640, 1024], k/v 256)', async () => {
  const qwen = await benchPack('qwen', [join(REAL_ADAPTERS, 'qwen2.5-0.5b-qv-r8')], ['--intermediate', '64'])
  assert.equal([qwen.config.block?.architecture, qwen.config.block?.shapes.q_proj, qwen.config.block?.shapes.v_proj, qwen.config.block?.shapes.k_proj], ['llama', [896, 896], [128, 896], [128, 896]])
  assert.equal(qwen.config.targets, ['q_proj', 'v_proj'])
  const gemma = await benchPack('gemma', [join(REAL_ADAPTERS, 'gemma3-270m-qkvo-r4')], ['--intermediate', '64'])
  assert.equal([gemma.config.block?.shapes.q_proj, gemma.config.block?.shapes.k_proj, gemma.config.block?.shapes.o_proj], [[1024, 640], [256, 640], [640, 1024]])
})

real('GPT-2 (fused Conv1D c_attn [2304, 768], fan_in_fan_out) and OPT (BF16, model.decoder.layers.N.self_attn)', async () => {
  const gpt2 = await benchPack('gpt2', [join(REAL_ADAPTERS, 'gpt2-r4a1-cattn-cproj'), join(REAL_ADAPTERS, 'gpt2-r4a16-cattn-cproj')])
  assert.equal(gpt2.config.block, {architecture: 'gpt2', shapes: {qkv_proj: [2304, 768], o_proj: [768, 768], up_proj: [3072, 768], down_proj: [768, 3072]}})
  assert.equal(gpt2.config.targets, ['qkv_proj', 'o_proj', 'down_proj'])
  const opt = await benchPack('opt', [join(REAL_ADAPTERS, 'opt-125m-qv-r16-bf16')], ['--intermediate', '64'])
  assert.equal([opt.config.block?.architecture, opt.config.block?.shapes.q_proj, opt.config.block?.shapes.up_proj], ['opt', [768, 768], [64, 768]])
})

test.run()
