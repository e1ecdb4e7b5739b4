import {existsSync, readFileSync, readdirSync} from 'node:fs'
import {OUTPUT_MARKER} from '../../../src/core/io/output-target.js'
import {join} from 'node:path'
import {suite} from 'uvu'
import * as assert from 'uvu/assert'
import {fromFloat} from '../../../src/core/dtype.js'
import {InputError} from '../../../src/core/errors.js'
import {SafetensorsFile} from '../../../src/core/formats/safetensors-file.js'
import {evaluateGate, mergeModel} from '../../../src/core/merge/merge-model.js'
import {ModelReader} from '../../../src/core/model-io/model-reader.js'
import {synthesizeBase} from '../../../src/core/synth/base.js'
import {REAL_ADAPTERS, maxAbs, maxAbsDiff, realAdaptersMissing, skipIf, tempDir} from '../../helpers/index.js'
import {FixtureTensor, normal, randomModule, referenceMerge, stored, writeBase, writeLora} from '../../helpers/merge-fixtures.js'

const test = suite('merge/merge-model')

const D = 64
const I = 96
const R = 4

/** A two-layer base: q_proj [D, D], up_proj [I, D] (nn.Linear), fc [D, I] stored [in, out] like Conv1D, a norm. */
function baseTensors(): FixtureTensor[] {
  return [
    {name: 'model.embed.weight', shape: [10, D], values: normal(10 * D, 0.1, 'embed')},
    {name: 'model.layers.0.q_proj.weight', shape: [D, D], values: normal(D * D, 1 / 8, 'q')},
    {name: 'model.layers.0.up_proj.weight', shape: [I, D], values: normal(I * D, 1 / 8, 'up')},
    {name: 'model.layers.0.conv.weight', shape: [I, D], values: normal(I * D, 1 / 8, 'conv')},
    {name: 'model.layers.0.norm.weight', shape: [D], values: normal(D, 0.02, 'norm')},
  ]
}

async function fixture(root: string, options: {shards?: string[][]; dtype?: 'F32' | 'F16'} = {}) {
  const tensors = baseTensors().map((t) => ({...t, dtype: options.dtype ?? ('F32' as const)}))
  await writeBase(join(root, 'base'), tensors, {shards: options.shards})
  // conv: in = I, out = D, stored [in, out] = [I, D] like GPT-2's Conv1D
  const q = randomModule('model.layers.0.q_proj', D, D, R, 'a1')
  const up = randomModule('model.layers.0.up_proj', D, I, R, 'a1')
  const conv = randomModule('model.layers.0.conv', I, D, R, 'a1')
  await writeLora(join(root, 'a1'), [q, up, conv], {r: R, alpha: 8})
  const q2 = randomModule('model.layers.0.q_proj', D, D, 2, 'a2')
  await writeLora(join(root, 'a2'), [q2], {r: 2, alpha: 2})
  return {tensors, q, up, conv, q2}
}

test('merged f32 weights equal a float64 reference (normal, [in, out], two weighted adapters)', async () => {
  const dir = tempDir()
  try {
    const f = await fixture(dir.path)
    const result = await mergeModel({base: join(dir.path, 'base'), adapters: [{path: join(dir.path, 'a1'), weight: 0.7}, {path: join(dir.path, 'a2'), weight: -1.5}], out: join(dir.path, 'out'), quality: false})
    assert.equal(result.merged.map((m) => [m.name, m.orientation, m.adapters]), [
      ['model.layers.0.q_proj.weight', '[out, in]', 2],
      ['model.layers.0.up_proj.weight', '[out, in]', 1],
      ['model.layers.0.conv.weight', '[in, out]', 1],
    ])
    const file = await SafetensorsFile.open(join(dir.path, 'out', 'model.safetensors'))
    const get = async (n: string) => (await file.readTensor(n)).toFloat64()
    const t = (n: string) => stored(f.tensors.find((x) => x.name === n)!.values)
    const s1 = 0.7 * (8 / R)
    const s2 = -1.5 * (2 / 2)
    const mod = (m: ReturnType<typeof randomModule>, r: number, scale: number) => ({a: stored(m.a), b: stored(m.b), r, in: m.in, out: m.out, scale})
    const expect: Array<[string, Float64Array]> = [
      ['model.layers.0.q_proj.weight', referenceMerge(t('model.layers.0.q_proj.weight'), [mod(f.q, R, s1), mod(f.q2, 2, s2)], false)],
      ['model.layers.0.up_proj.weight', referenceMerge(t('model.layers.0.up_proj.weight'), [mod(f.up, R, s1)], false)],
      ['model.layers.0.conv.weight', referenceMerge(t('model.layers.0.conv.weight'), [mod(f.conv, R, s1)], true)],
    ]
    for (const [name, ref] of expect) {
      const got = await get(name)
      assert.ok(maxAbsDiff(got, ref) <= 1e-6 * maxAbs(ref), `${name}: ${maxAbsDiff(got, ref)}`)
      assert.ok(maxAbsDiff(got, t(name)) > 1e-3, `${name} changed`)
    }
    // untouched tensors are byte-identical copies
    assert.equal(await get('model.layers.0.norm.weight'), t('model.layers.0.norm.weight'))
    await file.close()
  } finally {
    dir.cleanup()
  }
})

test('an F16 base merged to F16 (binary16 rows through onnxruntime) has exactly the bits of the float32 merge rounded to F16', async () => {
  const dir = tempDir()
  try {
    await fixture(dir.path, {dtype: 'F16'})
    const adapters = [{path: join(dir.path, 'a1'), weight: 0.7}, {path: join(dir.path, 'a2'), weight: -1.5}]
    await mergeModel({base: join(dir.path, 'base'), adapters, out: join(dir.path, 'f16'), quality: false})
    await mergeModel({base: join(dir.path, 'base'), adapters, out: join(dir.path, 'f32'), dtype: 'F32', quality: false})
    const half = await SafetensorsFile.open(join(dir.path, 'f16', 'model.safetensors'))
    const single = await SafetensorsFile.open(join(dir.path, 'f32', 'model.safetensors'))
    try {
      for (const name of ['model.layers.0.q_proj.weight', 'model.layers.0.up_proj.weight', 'model.layers.0.conv.weight']) {
        assert.is(half.tensors.get(name)!.dtype, 'F16')
        const expected = fromFloat('F16', (await single.readTensor(name)).toFloat32())
        assert.equal(Array.from(await half.readBytes(name)), Array.from(expected), name)
      }
    } finally {
      await half.close()
      await single.close()
    }
  } finally {
    dir.cleanup()
  }
})

skipIf(test, realAdaptersMissing())('the real pair: tiny-gpt2-r4 merges into tiny-gpt2-n_embd2 and equals a float64 reference', async () => {
  const dir = tempDir()
  try {
    const basePath = join(REAL_ADAPTERS, '_base-models', 'tiny-gpt2-n_embd2')
    const adapterPath = join(REAL_ADAPTERS, 'tiny-gpt2-r4')
    const result = await mergeModel({base: basePath, adapters: [{path: adapterPath}], out: join(dir.path, 'out'), quality: {rows: 64, seed: 1}})
    assert.is(result.merged.length, 6)
    assert.ok(result.merged.every((m) => m.orientation === '[in, out]'), 'GPT-2 Conv1D weights are [in, out]')
    assert.ok(existsSync(join(dir.path, 'out', 'config.json')))
    const base = await SafetensorsFile.open(join(basePath, 'model.safetensors'))
    const lora = await SafetensorsFile.open(join(adapterPath, 'adapter_model.safetensors'))
    const out = await SafetensorsFile.open(join(dir.path, 'out', 'model.safetensors'))
    const cfg = JSON.parse(readFileSync(join(adapterPath, 'adapter_config.json'), 'utf8')) as {r: number; lora_alpha: number}
    for (const m of result.merged) {
      const module = m.name.slice(0, -'.weight'.length)
      const a = (await lora.readTensor(`base_model.model.${module}.lora_A.weight`)).toFloat64()
      const bInfo = lora.tensors.get(`base_model.model.${module}.lora_B.weight`)!
      const b = (await lora.readTensor(bInfo.name)).toFloat64()
      const [outF, r] = bInfo.shape as [number, number]
      const inF = a.length / r
      const ref = referenceMerge((await base.readTensor(m.name)).toFloat64(), [{a, b, r, in: inF, out: outF, scale: cfg.lora_alpha / cfg.r}], true)
      const got = (await out.readTensor(m.name)).toFloat64()
      assert.ok(maxAbsDiff(got, ref) <= 1e-6 * maxAbs(ref), m.name)
    }
    for (const name of base.tensors.keys()) if (!result.merged.some((m) => m.name === name)) assert.equal(await out.readBytes(name), await base.readBytes(name), name)
    // an exact f32 merge keeps all of the adapter
    assert.ok(result.report!.totals.merged!.adapter_retained! > 0.9999)
    await Promise.all([base.close(), lora.close(), out.close()])
  } finally {
    dir.cleanup()
  }
})

test('a sharded base gives sharded output with a valid index; config.json is copied', async () => {
  const dir = tempDir()
  try {
    const names = baseTensors().map((t) => t.name)
    await fixture(dir.path, {shards: [names.slice(0, 2), names.slice(2)], dtype: 'F16'})
    const result = await mergeModel({base: join(dir.path, 'base'), adapters: [{path: join(dir.path, 'a1')}], out: join(dir.path, 'out'), quality: false})
    const files = readdirSync(join(dir.path, 'out')).filter((n) => n !== OUTPUT_MARKER).sort()
    assert.equal(files, ['config.json', 'model-00001-of-00002.safetensors', 'model-00002-of-00002.safetensors', 'model.safetensors.index.json'])
    assert.equal([...result.files].sort(), files)
    const index = JSON.parse(readFileSync(join(dir.path, 'out', 'model.safetensors.index.json'), 'utf8')) as {metadata: {total_size: number}; weight_map: Record<string, string>}
    assert.equal(Object.keys(index.weight_map).sort(), [...names].sort())
    let total = 0
    for (const file of new Set(Object.values(index.weight_map))) {
      const f = await SafetensorsFile.open(join(dir.path, 'out', file))
      for (const [n, shard] of Object.entries(index.weight_map)) if (shard === file) assert.ok(f.tensors.has(n), n)
      for (const info of f.tensors.values()) total += info.byteLength
      await f.close()
    }
    assert.is(index.metadata.total_size, total)
    const reader = await ModelReader.open(join(dir.path, 'out'))
    assert.is(reader.get('model.layers.0.up_proj.weight').dtype, 'F16')
    await reader.close()
  } finally {
    dir.cleanup()
  }
})

test('adapter_retained is 1 for an exact f32 merge and falls as the format gets coarser', async () => {
  const dir = tempDir()
  try {
    await fixture(dir.path)
    const retained: number[] = []
    for (const [i, run] of [{dtype: 'F32'}, {dtype: 'F16'}, {dtype: 'BF16'}, {quantize: 'int4', blockSize: 16}, {quantize: 'int4', blockSize: 64}].entries()) {
      const r = await mergeModel({
        base: join(dir.path, 'base'),
        adapters: [{path: join(dir.path, 'a1'), weight: 4}],
        out: join(dir.path, `out${i}`),
        dtype: (run as {dtype?: 'F32'}).dtype,
        quantize: (run as {quantize?: 'int4'}).quantize,
        blockSize: (run as {blockSize?: number}).blockSize,
        quality: {rows: 128, seed: 3},
      })
      const totals = r.report!.totals
      retained.push((totals.merged ?? totals.merge_then_quantize)!.adapter_retained!)
    }
    assert.ok(Math.abs(retained[0]! - 1) < 1e-5, `f32: ${retained[0]}`)
    for (let i = 1; i < retained.length; i++) assert.ok(retained[i]! < retained[i - 1]!, `${retained.join(' > ')}`)
  } finally {
    dir.cleanup()
  }
})

test('the report is measured on the written file: (a) matches an independent computation from the output', async () => {
  const dir = tempDir()
  try {
    const f = await fixture(dir.path)
    const r = await mergeModel({base: join(dir.path, 'base'), adapters: [{path: join(dir.path, 'a1')}], out: join(dir.path, 'out'), quantize: 'int4', blockSize: 32, quality: {rows: 16, seed: 1}})
    const out = await ModelReader.open(join(dir.path, 'out'))
    const name = 'model.layers.0.up_proj.weight'
    const written = Float64Array.from(await out.readRows(name, 0, I))
    await out.close()
    const exact = referenceMerge(stored(f.tensors.find((t) => t.name === name)!.values), [{a: stored(f.up.a), b: stored(f.up.b), r: R, in: D, out: I, scale: 2}], false)
    let e2 = 0
    let w2 = 0
    for (let i = 0; i < exact.length; i++) {
      e2 += (written[i]! - exact[i]!) ** 2
      w2 += exact[i]! ** 2
    }
    const entry = r.report!.tensors.find((t) => t.name === name)!
    assert.ok(Math.abs(entry.merge_then_quantize!.weight_rel_error! - Math.sqrt(e2 / w2)) < 1e-12)
    assert.ok(entry.quantized)
    assert.is(r.report!.written, 'merge_then_quantize')
    // the norm weight (1-D) and the embedding stay float; the alternatives are there
    assert.ok(entry.quantized_base_unmerged!.weight_rel_error! > 0 && entry.requantize!.weight_rel_error! > entry.quantized_base_unmerged!.weight_rel_error! * 0.5)
  } finally {
    dir.cleanup()
  }
})

test('--from-quantized (nf4 with double quantization, q4_0 GGUF, int4): the unmerged alternative is exact and (a) equals (c)', async () => {
  const dir = tempDir()
  try {
    await fixture(dir.path)
    // q4_0 is a GGUF llama.cpp loads: a Llama-shaped base with its tokenizer, adapters for it
    await synthesizeBase({out: join(dir.path, 'llama'), hidden: 64, intermediate: 96, layers: 1, vocab: 400, dtype: 'F32', seed: 2})
    for (const [name, alpha] of [['a2', 2], ['a1', 8]] as const) {
      const mods = (['q_proj', 'up_proj'] as const).map((p) => randomModule(`model.layers.0.${p === 'q_proj' ? 'self_attn' : 'mlp'}.${p}`, 64, p === 'q_proj' ? 64 : 96, 2, name))
      await writeLora(join(dir.path, `llama-${name}`), mods, {r: 2, alpha})
    }
    for (const [scheme, out, extra, base, prefix, embed] of [
      ['nf4', 'q-nf4', {doubleQuant: true}, 'base', '', 'model.embed.weight'],
      ['q4_0', 'q.gguf', {}, 'llama', 'llama-', 'token_embd.weight'],
      ['int4', 'q-int4', {blockSize: 32}, 'base', '', 'model.embed.weight'],
    ] as const) {
      await mergeModel({base: join(dir.path, base), adapters: [{path: join(dir.path, `${prefix}a2`)}], out: join(dir.path, out), quantize: scheme, quality: false, ...extra})
      const merged = join(dir.path, `m-${out}`)
      const r = await mergeModel({base: join(dir.path, out), fromQuantized: true, adapters: [{path: join(dir.path, `${prefix}a1`)}], out: merged, quality: {rows: 16, seed: 1}})
      assert.is(r.quantize, scheme)
      assert.is(r.report!.written, 'requantize')
      const t = r.report!.totals
      assert.equal(t.quantized_base_unmerged, {weight_rel_error: 0, delta_snr: null, adapter_retained: 1}, scheme)
      assert.equal(t.merge_then_quantize, t.requantize)
      assert.ok(t.requantize!.weight_rel_error! > 0.01, `${scheme}: re-quantizing loses something`)
      // untouched 4-bit tensors are copied as stored
      const before = await ModelReader.open(join(dir.path, out))
      const after = await ModelReader.open(merged)
      assert.equal(await after.readRows(embed, 0, 10), await before.readRows(embed, 0, 10))
      await Promise.all([before.close(), after.close()])
    }
  } finally {
    dir.cleanup()
  }
})

test('--from-quantized into another scheme: every 4-bit tensor is re-encoded and the bitsandbytes config is dropped', async () => {
  const dir = tempDir()
  try {
    await fixture(dir.path)
    await mergeModel({base: join(dir.path, 'base'), adapters: [{path: join(dir.path, 'a2')}], out: join(dir.path, 'q'), quantize: 'nf4', quality: false})
    assert.ok(JSON.parse(readFileSync(join(dir.path, 'q', 'config.json'), 'utf8')).quantization_config)
    const r = await mergeModel({base: join(dir.path, 'q'), fromQuantized: true, quantize: 'int4', blockSize: 32, adapters: [{path: join(dir.path, 'a1')}], out: join(dir.path, 'out'), quality: false})
    assert.equal(r.kept, [])
    const reader = await ModelReader.open(join(dir.path, 'out'))
    assert.equal([...reader.tensors.values()].filter((t) => t.encoding !== 'plain').map((t) => [t.name, t.encoding]), [
      ['model.layers.0.q_proj.weight', 'int4'],
      ['model.layers.0.up_proj.weight', 'int4'],
      ['model.layers.0.conv.weight', 'int4'],
    ])
    await reader.close()
    assert.is(JSON.parse(readFileSync(join(dir.path, 'out', 'config.json'), 'utf8')).quantization_config, undefined)
  } finally {
    dir.cleanup()
  }
})

test('--probe-file: real activations per module; a missing probe is a usage error naming the module', async () => {
  const dir = tempDir()
  try {
    await fixture(dir.path)
    const {writeSafetensors} = await import('../../../src/core/formats/safetensors-writer.js')
    const probe = (w: number, label: string) => ({dtype: 'F32' as const, shape: [8, w], data: new Float32Array(normal(8 * w, 1, label))})
    await writeSafetensors(join(dir.path, 'probes.safetensors'), [
      {name: 'model.layers.0.q_proj', ...probe(D, 'pq')},
      {name: 'model.layers.0.up_proj', ...probe(D, 'pu')},
      {name: 'model.layers.0.conv.weight', ...probe(I, 'pc')},
    ])
    const r = await mergeModel({base: join(dir.path, 'base'), adapters: [{path: join(dir.path, 'a1')}], out: join(dir.path, 'out'), quantize: 'nf4', quality: {rows: 0, seed: 0, file: join(dir.path, 'probes.safetensors')}})
    assert.is(r.report!.tensors.length, 3)
    assert.is(r.report!.probes.source, join(dir.path, 'probes.safetensors'))
    await writeSafetensors(join(dir.path, 'partial.safetensors'), [{name: 'model.layers.0.q_proj', ...probe(D, 'pq')}])
    try {
      await mergeModel({base: join(dir.path, 'base'), adapters: [{path: join(dir.path, 'a1')}], out: join(dir.path, 'out2'), quality: {rows: 0, seed: 0, file: join(dir.path, 'partial.safetensors')}})
      assert.unreachable()
    } catch (error) {
      assert.match((error as Error).message, /no probe tensor named "model\.layers\.0\.up_proj" or "model\.layers\.0\.up_proj\.weight"/)
    }
    assert.not.ok(existsSync(join(dir.path, 'out2')))
  } finally {
    dir.cleanup()
  }
})

test('the gate fails on any tensor below 1 − max_loss', () => {
  const report = {
    scheme: 'nf4',
    written: 'merge_then_quantize' as const,
    probes: {rows: 1, source: ''},
    tensors: [
      {name: 'a', quantized: true, merge_then_quantize: {weight_rel_error: 0, delta_snr: 1, adapter_retained: 0.95}},
      {name: 'b', quantized: true, merge_then_quantize: {weight_rel_error: 0, delta_snr: 1, adapter_retained: 0.7}},
    ],
    totals: {},
  }
  assert.equal(evaluateGate(report, 0.5), {max_loss: 0.5, passed: true, failing: []})
  assert.equal(evaluateGate(report, 0.1), {max_loss: 0.1, passed: false, failing: [{name: 'b', adapter_retained: 0.7}]})
})

async function rejects(fn: () => Promise<unknown>, code: string, pattern: RegExp): Promise<void> {
  try {
    await fn()
  } catch (error) {
    assert.instance(error, InputError)
    assert.is((error as InputError).code, code)
    assert.match((error as Error).message, pattern)
    assert.not.match((error as Error).message, /\n/)
    return
  }
  assert.unreachable(`expected ${code}`)
}

test('clear errors and no output folder: mismatched shapes, a missing base tensor, a missing shard, NaN under --quantize', async () => {
  const dir = tempDir()
  try {
    await fixture(dir.path)
    const base = join(dir.path, 'base')
    const out = join(dir.path, 'out')
    await writeLora(join(dir.path, 'bad-shape'), [randomModule('model.layers.0.up_proj', D, I + 1, R, 'x')], {r: R, alpha: 8})
    await rejects(() => mergeModel({base, adapters: [{path: join(dir.path, 'bad-shape')}], out}), 'MERGE_SHAPE_MISMATCH', /delta B·A is \[97, 64\] but base tensor "model\.layers\.0\.up_proj\.weight" is \[96, 64\]/)
    assert.not.ok(existsSync(out))
    await writeLora(join(dir.path, 'missing'), [randomModule('model.layers.0.k_proj', D, D, R, 'x')], {r: R, alpha: 8})
    await rejects(() => mergeModel({base, adapters: [{path: join(dir.path, 'missing')}], out}), 'MERGE_NO_BASE_TENSOR', /module "model\.layers\.0\.k_proj": the base .* has no tensor "model\.layers\.0\.k_proj\.weight"/)
    assert.not.ok(existsSync(out))
    const names = baseTensors().map((t) => t.name)
    await writeBase(join(dir.path, 'sharded'), baseTensors(), {shards: [names.slice(0, 2), names.slice(2)]})
    const {rmSync} = await import('node:fs')
    rmSync(join(dir.path, 'sharded', 'model-00002-of-00002.safetensors'))
    await rejects(() => mergeModel({base: join(dir.path, 'sharded'), adapters: [{path: join(dir.path, 'a1')}], out}), 'SHARD_MISSING', /model-00002-of-00002\.safetensors/)
    assert.not.ok(existsSync(out))
    const nan = baseTensors()
    nan[2]!.values[5] = Number.NaN
    await writeBase(join(dir.path, 'nan'), nan)
    await rejects(() => mergeModel({base: join(dir.path, 'nan'), adapters: [{path: join(dir.path, 'a1')}], out, quantize: 'nf4'}), 'TENSOR_NOT_FINITE', /read .*nan.*: tensor "model\.layers\.0\.up_proj\.weight" holds NaN at element 5/)
    assert.not.ok(existsSync(out))
    assert.equal(readdirSync(dir.path).filter((n) => n.includes('.tmp-')), [], 'no temporary files left')
  } finally {
    dir.cleanup()
  }
})

test.run()
