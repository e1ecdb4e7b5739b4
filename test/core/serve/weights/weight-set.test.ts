import {statSync} from 'node:fs'
import {join} from 'node:path'
import {suite} from 'uvu'
import * as assert from 'uvu/assert'
import {baseDims} from '../../../../src/core/bench/base-dims.js'
import {fromFloat, toFloat32} from '../../../../src/core/dtype.js'
import {WeightSetSpec, prepareWeightSet, weightSetKey} from '../../../../src/core/serve/weights/weight-set.js'
import {openModel} from '../../../../src/core/formats/sharded-model.js'
import {layoutNames} from '../../../../src/core/serve/lora-layout.js'
import {synthesizeBase} from '../../../../src/core/synth/base.js'
import {tempDir} from '../../../helpers/index.js'

const test = suite('bench weight sets')

const spec = (over: Partial<WeightSetSpec> = {}): WeightSetSpec => ({
  dims: {model: 'llama', hidden: 16, intermediate: 24, layers: 2, targets: ['q_proj', 'v_proj', 'gate_proj', 'down_proj']},
  adapters: 5,
  ranks: [2, 4, 3],
  sharedK: 2,
  fuse: true,
  seed: 1,
  include: {stacks: true, shared: true},
  ...over,
})

test('layout: fused groups, slot 0 all zero, ranks padded with zeros, shapes as documented', async () => {
  const tmp = tempDir()
  try {
    const set = await prepareWeightSet(spec(), {workDir: tmp.path})
    assert.equal(set.groups.map((g) => [g.key, g.members.map((m) => m.projection)]), [
      ['L0.qkv', ['q_proj', 'v_proj']],
      ['L0.gu', ['gate_proj']],
      ['L0.down', ['down_proj']],
      ['L1.qkv', ['q_proj', 'v_proj']],
      ['L1.gu', ['gate_proj']],
      ['L1.down', ['down_proj']],
    ])
    assert.is(set.rank, 4)
    assert.equal(set.info.slotRanks, [0, 2, 4, 3, 2, 4])
    const qkv = set.groups[0]!
    assert.equal(set.tensor(layoutNames.groupA(qkv)).dims, [6, 8, 16])
    const v = qkv.members[1]!
    assert.equal(set.tensor(layoutNames.moduleB(v)).dims, [6, 16, 4])
    assert.equal(set.tensor(layoutNames.groupAk(qkv)).dims, [6, 4, 16])
    assert.equal(set.tensor(layoutNames.moduleBk(v)).dims, [2, 16])
    assert.equal(set.tensor(layoutNames.weight(set.modules.find((m) => m.key === 'L1.down_proj')!)).dims, [24, 16])
    const A = set.read(layoutNames.groupA(qkv), 0, 6 * 8 * 16)
    const B = set.read(layoutNames.moduleB(v), 0, 6 * 16 * 4)
    const nonZero = (a: Float32Array) => a.some((x) => x !== 0)
    assert.not.ok(nonZero(A.subarray(0, 8 * 16)), 'slot 0 A is zero')
    assert.not.ok(nonZero(B.subarray(0, 16 * 4)), 'slot 0 B is zero')
    for (let s = 1; s < 6; s++) {
      const r = set.info.slotRanks[s]!
      for (let j = 0; j < 2; j++) {
        for (let row = 0; row < 4; row++) {
          const block = A.subarray(((s * 8) + j * 4 + row) * 16, ((s * 8) + j * 4 + row + 1) * 16)
          assert.is(nonZero(block), row < r, `slot ${s} member ${j} row ${row}`)
        }
      }
      for (let o = 0; o < 16; o++) for (let c = 0; c < 4; c++) assert.is(B[(s * 16 + o) * 4 + c] !== 0, c < r)
    }
  } finally {
    tmp.cleanup()
  }
})

test('a set is built once per configuration and reused; the key follows every field', async () => {
  const tmp = tempDir()
  try {
    const a = await prepareWeightSet(spec(), {workDir: tmp.path})
    const mtime = statSync(a.dataPath).mtimeMs
    const b = await prepareWeightSet(spec(), {workDir: tmp.path})
    assert.is(b.dir, a.dir)
    assert.is(statSync(b.dataPath).mtimeMs, mtime)
    assert.is.not(weightSetKey(spec({seed: 2})), weightSetKey(spec()))
    assert.is.not(weightSetKey(spec({ranks: [4]})), weightSetKey(spec()))
    const c = await prepareWeightSet(spec({seed: 2}), {workDir: tmp.path})
    assert.not.equal(Array.from(c.read('L0.qkv.A', 8 * 16, 16)), Array.from(a.read('L0.qkv.A', 8 * 16, 16)))
  } finally {
    tmp.cleanup()
  }
})

test('f16 stacks: the A/B stacks and A\' are stored as f16 (half the bytes), the f32 set\'s values rounded to nearest even; base, norms and shared B stay f32; a cache key of their own', async () => {
  const tmp = tempDir()
  try {
    const f32 = await prepareWeightSet(spec(), {workDir: tmp.path})
    const f16 = await prepareWeightSet(spec({stackDtype: 'f16'}), {workDir: tmp.path})
    assert.is.not(f16.dir, f32.dir)
    assert.is(f16.stackDtype, 'f16')
    assert.is(f32.stackDtype, 'f32')
    const halves = new Set([...f16.groups.flatMap((g) => [layoutNames.groupA(g), layoutNames.groupAk(g), ...g.members.map((m) => layoutNames.moduleB(m))])])
    for (const [name, t] of Object.entries(f16.info.tensors)) {
      const wide = f32.info.tensors[name]!
      assert.equal(t.dims, wide.dims, name)
      assert.is(f16.tensor(name).type, halves.has(name) ? 'float16' : 'float32', name)
      assert.is(f32.tensor(name).type, 'float32', name)
      assert.is(t.length, halves.has(name) ? wide.length / 2 : wide.length, name)
      const count = t.dims.reduce((a, b) => a * b, 1)
      const want = f32.read(name, 0, count)
      const got = f16.read(name, 0, count)
      const rounded = halves.has(name) ? toFloat32('F16', fromFloat('F16', want)) : want
      assert.equal(Array.from(got), Array.from(rounded), name)
      if (halves.has(name)) assert.ok(got.some((v, i) => v !== want[i]), `${name}: some values moved when rounded`)
      // reads at an offset land on the same elements
      assert.equal(Array.from(f16.read(name, 3, 5)), Array.from(got.subarray(3, 8)), `${name} at an offset`)
    }
    assert.is(f16.info.shared!.bytes, f32.info.shared!.bytes - f16.groups.reduce((s, g) => s + g.members.length * 2 * f16.slots * g.in * 2, 0), 'A\' bytes halved, shared B not')
  } finally {
    tmp.cleanup()
  }
})

test('a real base: weights are its numbers, transposed; dims are read from it and flags must agree', async () => {
  const tmp = tempDir()
  try {
    const base = join(tmp.path, 'base')
    await synthesizeBase({out: base, hidden: 16, intermediate: 24, layers: 3, vocab: 32, dtype: 'F16', seed: 4})
    assert.equal(await baseDims(base, {}), {hidden: 16, intermediate: 24, layers: 3})
    assert.equal(await baseDims(base, {layers: 2}), {hidden: 16, intermediate: 24, layers: 2})
    try {
      await baseDims(base, {hidden: 32})
      assert.unreachable()
    } catch (e) {
      assert.match((e as Error).message, /^--hidden 32 does not match the base .*base \(hidden 16\)$/)
    }
    const set = await prepareWeightSet(spec({basePath: base}), {workDir: tmp.path})
    const model = await openModel(base)
    const w = (await model.readTensor('model.layers.1.mlp.down_proj.weight')).toFloat32() // [16, 24]
    await model.close()
    const wt = set.read('L1.down_proj.W', 0, 24 * 16) // [24, 16]
    for (let i = 0; i < 24; i++) for (let o = 0; o < 16; o++) assert.is(wt[i * 16 + o], w[o * 24 + i])
    try {
      await prepareWeightSet(spec({basePath: base, dims: {...spec().dims, intermediate: 20}}), {workDir: tmp.path})
      assert.unreachable()
    } catch (e) {
      assert.match((e as Error).message, /^read base .*base\/model\.safetensors: tensor "model\.layers\.0\.mlp\.gate_proj\.weight" has shape \[24, 16\] \(expected \[20, 16\]/)
    }
  } finally {
    tmp.cleanup()
  }
})

test.run()
