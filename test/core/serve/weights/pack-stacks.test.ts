import {join} from 'node:path'
import {suite} from 'uvu'
import * as assert from 'uvu/assert'
import {resolveModelShape} from '../../../../src/core/bench/base-dims.js'
import {GraphExecutor} from '../../../../src/core/serve/executors.js'
import {readPackShape} from '../../../../src/core/serve/weights/pack-stacks.js'
import {compareRows, referenceRows} from '../../../../src/core/serve/reference.js'
import {prepareWeightSet} from '../../../../src/core/serve/weights/weight-set.js'
import {LoraAdapter} from '../../../../src/core/formats/peft-adapter.js'
import type {Projection} from '../../../../src/core/models/llama.js'
import {layoutNames} from '../../../../src/core/serve/lora-layout.js'
import {packAdapters} from '../../../../src/core/pack/pack-adapters.js'
import {Rng} from '../../../../src/core/random.js'
import {synthesizeAdapters} from '../../../../src/core/synth/adapters.js'
import {synthesizeBase} from '../../../../src/core/synth/base.js'
import {runCli, tempDir} from '../../../helpers/index.js'

const test = suite('bench stacks from a lora pack')

const DIMS = {hidden: 32, intermediate: 48, layers: 2}

async function fixture(root: string): Promise<{pack: string; base: string; adapters: string}> {
  const adapters = join(root, 'ad')
  await synthesizeAdapters({out: adapters, count: 3, ranks: [4, 8], ...DIMS, targets: ['q_proj', 'v_proj', 'down_proj'], dtype: 'F16', seed: 3, sharedSubspace: 0})
  const pack = join(root, 'pack.safetensors')
  await packAdapters({inputs: [adapters], out: pack})
  const base = join(root, 'base')
  await synthesizeBase({out: base, ...DIMS, vocab: 16, dtype: 'F16', seed: 1})
  return {pack, base, adapters}
}

test('the pack implies the model: adapter count, dims and targets; contradicting flags are refused', async () => {
  const tmp = tempDir()
  try {
    const f = await fixture(tmp.path)
    assert.equal(await readPackShape(f.pack), {adapters: 3, architecture: 'llama', hidden: 32, intermediate: 48, attention: 32, kv: 32, layers: 2, targets: ['q_proj', 'v_proj', 'down_proj'] as Projection[]})
    assert.equal(await resolveModelShape({packPath: f.pack}), {...DIMS, targets: ['q_proj', 'v_proj', 'down_proj'], adapters: [3]})
    for (const [over, message] of [
      [{adapters: [5] as number[]}, /^--adapters 5 does not match the pack .*pack\.safetensors \(it holds 3 adapters\)$/],
      [{hidden: 64}, /^the pack .* has hidden 32 but the model has 64$/],
      [{layers: 3}, /adapts 2 layers but the model has 3/],
    ] as const) {
      try {
        await resolveModelShape({packPath: f.pack, ...over})
        assert.unreachable(JSON.stringify(over))
      } catch (e) {
        assert.match((e as Error).message, message)
      }
    }
  } finally {
    tmp.cleanup()
  }
})

test('stacks hold each adapter\'s s·B·A exactly as its PEFT files say; gather on them equals the reference', async () => {
  const tmp = tempDir()
  try {
    const f = await fixture(tmp.path)
    const set = await prepareWeightSet(
      {dims: {model: 'llama', ...DIMS, targets: ['q_proj', 'v_proj', 'down_proj'] as Projection[]}, adapters: 3, ranks: [8], sharedK: 2, fuse: true, seed: 0, include: {stacks: true, shared: false}, packPath: f.pack, basePath: f.base},
      {workDir: join(tmp.path, 'work')},
    )
    assert.is(set.rank, 8)
    for (const [slot, name] of [[1, 'adapter-0000'], [2, 'adapter-0001'], [3, 'adapter-0002']] as const) {
      const adapter = await LoraAdapter.load(join(f.adapters, name))
      for (const m of set.modules.filter((x) => x.targeted)) {
        const lm = adapter.modules.get(m.path)!
        const a = (await adapter.readA(m.path)).toFloat64() // [r, in]
        const b = (await adapter.readB(m.path)).toFloat64() // [out, r]
        const group = set.groups.find((g) => g.members.some((x) => x.key === m.key))!
        const j = group.members.findIndex((x) => x.key === m.key)
        const G = group.members.length
        const A = set.read(layoutNames.groupA(group), slot * G * 8 * m.in + j * 8 * m.in, 8 * m.in)
        const B = set.read(layoutNames.moduleB(m), slot * m.out * 8, m.out * 8)
        let worst = 0
        for (let o = 0; o < m.out; o++) {
          for (let i = 0; i < m.in; i++) {
            let want = 0
            let got = 0
            for (let c = 0; c < lm.r; c++) want += lm.scaling * b[o * lm.r + c]! * a[c * m.in + i]!
            for (let c = 0; c < 8; c++) got += B[o * 8 + c]! * A[c * m.in + i]!
            worst = Math.max(worst, Math.abs(got - want))
          }
        }
        assert.ok(worst < 1e-6, `${name} ${m.path}: ${worst}`)
      }
      await adapter.file.close()
    }
    const gather = await GraphExecutor.create(set, 'gather', {ep: 'cpu', threads: 1, tokens: 1})
    const rng = new Rng(2, 'x')
    const x = Float32Array.from({length: 4 * 32}, () => rng.next() * 2 - 1)
    const step = {slots: Int32Array.from([3, 0, 1, 2])}
    const rows = [0, 1, 2, 3]
    const {maxAbsError, maxAbsRef} = compareRows(await gather.run(step, x), 32, rows, await referenceRows({set, kind: 'stacks', step, tokens: 1, x, rows}))
    await gather.close()
    assert.ok(maxAbsError / maxAbsRef < 1e-4)
  } finally {
    tmp.cleanup()
  }
})

test('f16 stacks of an F16 pack hold the stored A exactly, and B with the scaling (2 = alpha/r) folded in exactly; gather equals the reference', async () => {
  const tmp = tempDir()
  try {
    const f = await fixture(tmp.path)
    const set = await prepareWeightSet(
      {dims: {model: 'llama', ...DIMS, targets: ['q_proj', 'v_proj', 'down_proj'] as Projection[]}, adapters: 3, ranks: [8], sharedK: 2, fuse: true, seed: 0, include: {stacks: true, shared: false}, packPath: f.pack, stackDtype: 'f16'},
      {workDir: join(tmp.path, 'work')},
    )
    for (const [slot, name] of [[1, 'adapter-0000'], [2, 'adapter-0001'], [3, 'adapter-0002']] as const) {
      const adapter = await LoraAdapter.load(join(f.adapters, name))
      for (const m of set.modules.filter((x) => x.targeted)) {
        const lm = adapter.modules.get(m.path)!
        assert.is(lm.dtype, 'F16')
        assert.is(lm.scaling, 2)
        const a = (await adapter.readA(m.path)).toFloat32() // [r, in]
        const b = (await adapter.readB(m.path)).toFloat32() // [out, r]
        const group = set.groups.find((g) => g.members.some((x) => x.key === m.key))!
        const j = group.members.findIndex((x) => x.key === m.key)
        const G = group.members.length
        assert.is(set.tensor(layoutNames.groupA(group)).type, 'float16')
        const A = set.read(layoutNames.groupA(group), slot * G * 8 * m.in + j * 8 * m.in, lm.r * m.in)
        assert.equal(Array.from(A), Array.from(a), `${name} ${m.path}: A`)
        const B = set.read(layoutNames.moduleB(m), slot * m.out * 8, m.out * 8)
        for (let o = 0; o < m.out; o++) for (let c = 0; c < lm.r; c++) assert.is(B[o * 8 + c], 2 * b[o * lm.r + c]!, `${name} ${m.path}: B[${o}, ${c}]`)
      }
      await adapter.file.close()
    }
    const gather = await GraphExecutor.create(set, 'gather', {ep: 'cpu', threads: 1, tokens: 1, batch: 4})
    const rng = new Rng(2, 'x')
    const x = Float32Array.from({length: 4 * 32}, () => rng.next() * 2 - 1)
    const step = {slots: Int32Array.from([3, 0, 1, 2])}
    const rows = [0, 1, 2, 3]
    const {maxAbsError, maxAbsRef} = compareRows(await gather.run(step, x), 32, rows, await referenceRows({set, kind: 'stacks', step, tokens: 1, x, rows}))
    await gather.close()
    assert.ok(maxAbsError / maxAbsRef < 1e-5, `${maxAbsError / maxAbsRef}`)
  } finally {
    tmp.cleanup()
  }
})

test('lora bench --base --pack: every strategy within tolerance, the pack named in the report', async () => {
  const tmp = tempDir()
  try {
    const f = await fixture(tmp.path)
    const r = await runCli(['bench', '--base', f.base, '--pack', f.pack, '--batch', '4', '--rounds', '1', '--steps', '1', '--json'])
    assert.is(r.status, 0, r.stderr)
    const report = JSON.parse(r.stdout)
    assert.equal([report.config.hidden, report.config.intermediate, report.config.layers, report.config.rank], [32, 48, 2, 8])
    assert.equal(report.config.targets, ['q_proj', 'v_proj', 'down_proj'])
    assert.match(report.config.weights, /^pack .*pack\.safetensors, base .*base; shared-b compressed in memory from the pack at K = 16$/)
    assert.equal([report.config.shared_b.source, report.config.shared_b.k], ['compressed', 16])
    assert.equal(report.results.map((x: {strategy: string}) => x.strategy), ['base', 'gather', 'segment', 'shared-b', 'mask', 'merged'])
    for (const x of report.results) assert.is(x.adapters, 3)
    const wrong = await runCli(['bench', '--pack', f.pack, '--hidden', '64'])
    assert.is(wrong.status, 2)
    assert.match(wrong.stderr, /^Error: the pack .* has hidden 32 but the model has 64\n$/)
  } finally {
    tmp.cleanup()
  }
})

test.run()
