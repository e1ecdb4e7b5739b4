import {statSync} from 'node:fs'
import {join} from 'node:path'
import {suite} from 'uvu'
import * as assert from 'uvu/assert'
import {baseDims} from '../../../src/core/bench/base-dims.js'
import {WeightSetSpec, prepareWeightSet, weightSetKey} from '../../../src/core/bench/weight-set.js'
import {openModel} from '../../../src/core/formats/sharded-model.js'
import {layoutNames} from '../../../src/core/onnx/lora-layout.js'
import {synthesizeBase} from '../../../src/core/synth/base.js'
import {tempDir} from '../../helpers/index.js'

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
