import {renameSync} from 'node:fs'
import {join} from 'node:path'
import {suite} from 'uvu'
import * as assert from 'uvu/assert'
import {GraphExecutor} from '../../../../src/core/serve/executors.js'
import {compareRows, referenceRows} from '../../../../src/core/serve/reference.js'
import {WeightSet, WeightSetSpec, prepareWeightSet} from '../../../../src/core/serve/weights/weight-set.js'
import {compressFile} from '../../../../src/core/compress/compress-file.js'
import {SharedBFile} from '../../../../src/core/formats/shared-b-file.js'
import {fromFloat, toFloat32} from '../../../../src/core/dtype.js'
import type {Projection} from '../../../../src/core/models/llama.js'
import {ModuleSpec, layoutNames} from '../../../../src/core/serve/lora-layout.js'
import {packAdapters} from '../../../../src/core/pack/pack-adapters.js'
import {Rng} from '../../../../src/core/random.js'
import {synthesizeAdapters} from '../../../../src/core/synth/adapters.js'
import {runCli, tempDir} from '../../../helpers/index.js'

const test = suite('bench shared-B weights: synthetic, a lora-pack-shared-b file, or the pack compressed in memory')

const DIMS = {hidden: 32, intermediate: 48, layers: 2}
const TARGETS: Projection[] = ['q_proj', 'v_proj', 'down_proj']

/**
 * A pack of 3 adapters: two of rank 2 on q, v and down, one of rank 4 on q
 * only; so Σr is 8 on q and 4 on v and down, and `--rank 6` gives K = 6 on q
 * and 4 (the useful rank) on the others.
 */
async function fixture(root: string, hidden = DIMS.hidden): Promise<string> {
  const dims = {...DIMS, hidden}
  const two = join(root, 'two')
  await synthesizeAdapters({out: two, count: 2, ranks: [2], ...dims, targets: TARGETS, dtype: 'F16', seed: 3, sharedSubspace: 0.5})
  const one = join(root, 'one')
  await synthesizeAdapters({out: one, count: 1, ranks: [4], ...dims, targets: ['q_proj'], dtype: 'F16', seed: 4, sharedSubspace: 0})
  renameSync(join(one, 'adapter-0000'), join(one, 'q-only'))
  const pack = join(root, 'pack.safetensors')
  await packAdapters({inputs: [join(two, 'adapter-0000'), join(two, 'adapter-0001'), join(one, 'q-only')], out: pack})
  return pack
}

async function compressed(pack: string, out: string, rank: number, dtype: 'F16' | 'F32'): Promise<string> {
  await compressFile({inputs: [pack], out, selection: {rank}, dtype, allowGrowth: true})
  return out
}

function spec(extra: Partial<WeightSetSpec>): WeightSetSpec {
  return {dims: {model: 'llama', ...DIMS, targets: TARGETS}, adapters: 3, ranks: [4], sharedK: 6, fuse: true, seed: 0, include: {stacks: false, shared: true}, ...extra}
}

/** Member j of m's group and the group's member count. */
function place(set: WeightSet, m: ModuleSpec): {name: string; j: number; G: number} {
  const group = set.groups.find((g) => g.members.some((x) => x.key === m.key))!
  return {name: layoutNames.groupAk(group), j: group.members.findIndex((x) => x.key === m.key), G: group.members.length}
}

/** The weight set's Ak / Bk hold the file's A' and Uᵀ at each module's K, zeros past it. */
async function assertHoldsFile(set: WeightSet, path: string): Promise<void> {
  const file = await SharedBFile.open(path)
  try {
    const W = set.sharedWidth
    for (const m of set.modules.filter((x) => x.targeted)) {
      const K = file.ranks.get(m.path)!
      assert.is(set.sharedRank(m.key), K, m.key)
      const {name, j, G} = place(set, m)
      for (let slot = 0; slot < set.slots; slot++) {
        const want = (await file.readA(m.path, slot)).toFloat32()
        const got = set.read(name, (slot * G * W + j * W) * m.in, W * m.in)
        assert.equal(Array.from(got.subarray(0, K * m.in)), Array.from(want), `${m.key} slot ${slot}`)
        assert.ok(got.subarray(K * m.in).every((v) => v === 0), `${m.key} slot ${slot}: padding rows are zero`)
      }
      const u = (await file.readSharedB(m.path)).toFloat32() // [out, K]
      const bk = set.read(layoutNames.moduleBk(m), 0, W * m.out)
      for (let c = 0; c < W; c++) for (let o = 0; o < m.out; o++) assert.is(bk[c * m.out + o], c < K ? u[o * K + c] : 0, `${m.key} Bk[${c}, ${o}]`)
    }
  } finally {
    await file.close()
  }
}

/** shared-b on every adapter (and none) against the float64 reference. */
async function sharedError(set: WeightSet): Promise<number> {
  const executor = await GraphExecutor.create(set, 'shared-b', {ep: 'cpu', threads: 1, tokens: 1})
  try {
    const rng = new Rng(5, 'x')
    const x = Float32Array.from({length: 4 * DIMS.hidden}, () => rng.next() * 2 - 1)
    const step = {slots: Int32Array.from([3, 0, 1, 2])}
    const rows = [0, 1, 2, 3]
    const ref = await referenceRows({set, kind: 'shared', step, tokens: 1, x, rows})
    const {maxAbsError, maxAbsRef} = compareRows(await executor.run(step, x), DIMS.hidden, rows, ref)
    return maxAbsError / maxAbsRef
  } finally {
    await executor.close()
  }
}

test('--shared-b: the file\'s stored A\' and U, K per module from the file, padded to the largest with zeros; shared-b equals the float64 reference', async () => {
  const tmp = tempDir()
  try {
    const pack = await fixture(tmp.path)
    const file = await compressed(pack, join(tmp.path, 'k6.safetensors'), 6, 'F16')
    const set = await prepareWeightSet(spec({packPath: pack, sharedBPath: file, sharedK: 16}), {workDir: join(tmp.path, 'work')})
    assert.equal(set.info.shared!.ranks, {'L0.q_proj': 6, 'L0.v_proj': 4, 'L0.down_proj': 4, 'L1.q_proj': 6, 'L1.v_proj': 4, 'L1.down_proj': 4})
    assert.is(set.sharedWidth, 6, 'K from the file, not --shared-k')
    assert.is(set.info.shared!.kind, 'file')
    // padding: 2 rows of A' per slot and 2 rows of Uᵀ on v (in 32) and down (in 48), f32, per layer
    assert.is(set.info.shared!.paddingBytes, 2 * 2 * ((4 * 32 + 32) + (4 * 48 + 32)) * 4)
    const errors = [...(await SharedBFile.open(file).then(async (f) => {
      const values = Object.values(f.errors).flatMap((e) => e.errors.filter((v): v is number => v !== null))
      await f.close()
      return values
    }))]
    assert.ok(Math.abs(set.info.shared!.errors!.max - Math.max(...errors)) < 1e-15)
    assert.ok(set.info.shared!.errors!.max > 0.01, 'K = 4 of Σr = 4 is exact, K = 6 of 8 on q is not')
    await assertHoldsFile(set, file)
    const err = await sharedError(set)
    assert.ok(err < 1e-5, `relative error ${err}`)
  } finally {
    tmp.cleanup()
  }
})

test('f16 stacks with --shared-b: an F16 file\'s A\' is held exactly, an F32 file\'s rounded once to f16 and the reference rounds it alike; shared-b equals the reference', async () => {
  const tmp = tempDir()
  try {
    const pack = await fixture(tmp.path)
    const half = await compressed(pack, join(tmp.path, 'k6-f16.safetensors'), 6, 'F16')
    const exact = await prepareWeightSet(spec({packPath: pack, sharedBPath: half, stackDtype: 'f16'}), {workDir: join(tmp.path, 'work')})
    assert.is(exact.tensor(place(exact, exact.modules.find((m) => m.targeted)!).name).type, 'float16')
    await assertHoldsFile(exact, half)
    assert.ok((await sharedError(exact)) < 1e-5)
    const full = await compressed(pack, join(tmp.path, 'k6-f32.safetensors'), 6, 'F32')
    const rounded = await prepareWeightSet(spec({packPath: pack, sharedBPath: full, stackDtype: 'f16'}), {workDir: join(tmp.path, 'work')})
    const file = await SharedBFile.open(full)
    try {
      const m = rounded.modules.find((x) => x.key === 'L0.q_proj')!
      const {name, j, G} = place(rounded, m)
      const want = (await file.readA(m.path, 1)).toFloat32()
      const got = rounded.read(name, (1 * G * 6 + j * 6) * m.in, 6 * m.in)
      assert.equal(Array.from(got), Array.from(toFloat32('F16', fromFloat('F16', want))))
      assert.ok(got.some((v, i) => v !== want[i]), 'some A\' values moved')
    } finally {
      await file.close()
    }
    const err = await sharedError(rounded)
    assert.ok(err < 1e-5, `relative error ${err}`)
  } finally {
    tmp.cleanup()
  }
})

test('--pack without --shared-b: the pack compressed in memory at --shared-k, the same values as lora compress --rank K --dtype f32 writes', async () => {
  const tmp = tempDir()
  try {
    const pack = await fixture(tmp.path)
    const file = await compressed(pack, join(tmp.path, 'k6-f32.safetensors'), 6, 'F32')
    const set = await prepareWeightSet(spec({packPath: pack, sharedK: 6}), {workDir: join(tmp.path, 'work')})
    assert.is(set.info.shared!.kind, 'compressed')
    assert.is(set.sharedWidth, 6)
    await assertHoldsFile(set, file)
    const err = await sharedError(set)
    assert.ok(err < 1e-5, `relative error ${err}`)
  } finally {
    tmp.cleanup()
  }
})

test('synthetic shared-B weights: K = --shared-k on every module, no errors to report', async () => {
  const tmp = tempDir()
  try {
    const set = await prepareWeightSet(spec({sharedK: 3}), {workDir: join(tmp.path, 'work')})
    assert.equal([set.info.shared!.kind, set.sharedWidth, set.info.shared!.paddingBytes, set.info.shared!.errors], ['synthetic', 3, 0, null])
    assert.ok((await sharedError(set)) < 1e-5)
  } finally {
    tmp.cleanup()
  }
})

test('lora bench --pack --shared-b: shared-b within tolerance, the file and its K in the report; mismatched files exit 2 with one line naming the file', async () => {
  const tmp = tempDir()
  try {
    const pack = await fixture(join(tmp.path, 'a'))
    const file = await compressed(pack, join(tmp.path, 'k6.safetensors'), 6, 'F16')
    const run = ['bench', '--pack', pack, '--batch', '4', '--rounds', '1', '--steps', '1', '--strategies', 'base,gather,shared-b']
    const r = await runCli([...run, '--shared-b', file, '--json'])
    assert.is(r.status, 0, r.stderr)
    const report = JSON.parse(r.stdout)
    assert.match(report.config.weights, /^pack .*pack\.safetensors, synthetic base; shared-b from the compressed file .*k6\.safetensors$/)
    assert.equal({...report.config.shared_b, error_mean: 0, error_max: 0}, {source: 'file', path: file, k: 6, k_min: 4, k_max: 6, padding_bytes: 2 * 2 * (4 * 32 + 32 + 4 * 48 + 32) * 4, error_mean: 0, error_max: 0})
    assert.ok(report.config.shared_b.error_max > 0)
    assert.is(report.config.shared_k, 6)
    const shared = report.results.find((x: {strategy: string}) => x.strategy === 'shared-b')
    assert.ok(shared.max_abs_error < 1e-4, `${shared.max_abs_error}`)
    const plain = await runCli([...run, '--shared-b', file])
    assert.is(plain.status, 0, plain.stderr)
    assert.match(plain.stderr + plain.stdout, /shared-b from the compressed file .*k6\.safetensors: K 4–6 per module, padded with zeros to 6/)

    // compressed from a pack of another size, of other dims, or not a shared-B file at all
    const twoAdapters = join(tmp.path, 'b')
    await synthesizeAdapters({out: twoAdapters, count: 2, ranks: [2], ...DIMS, targets: TARGETS, dtype: 'F16', seed: 3, sharedSubspace: 0})
    await packAdapters({inputs: [twoAdapters], out: join(tmp.path, 'b.safetensors')})
    const fewer = await compressed(join(tmp.path, 'b.safetensors'), join(tmp.path, 'b-k2.safetensors'), 2, 'F16')
    const wider = await compressed(await fixture(join(tmp.path, 'c'), 64), join(tmp.path, 'c-k2.safetensors'), 2, 'F16')
    for (const [args, message] of [
      [['--shared-b', fewer], /^Error: read .*b-k2\.safetensors: it holds 2 adapters but the pack .*pack\.safetensors holds 3 \(--shared-b must be compressed from --pack\)\n$/],
      [['--shared-b', wider], /^Error: read .*c-k2\.safetensors: module model\.layers\.0\.self_attn\.q_proj is linear \[out 64, in 64\] but the model has linear \[out 32, in 32\]\n$/],
      [['--shared-b', pack], /^Error: read .*pack\.safetensors: not a lora-pack-shared-b file \(__metadata__\.format is "lora-pack"\)\n$/],
      [['--shared-b', file, '--shared-k', '8'], /^Error: --shared-k does not apply with --shared-b .*k6\.safetensors: K comes from the file\n$/],
    ] as const) {
      const bad = await runCli([...run, ...args])
      assert.is(bad.status, 2, `${args.join(' ')}: ${bad.stderr}`)
      assert.match(bad.stderr, message)
      assert.is(bad.stderr.trim().split('\n').length, 1, bad.stderr)
    }
    const noPack = await runCli(['bench', '--shared-b', file])
    assert.is(noPack.status, 2, noPack.stderr)
    assert.match(noPack.stderr, /^Error: --shared-b .*k6\.safetensors needs --pack \(the lora-pack it was compressed from\)\n$/)
  } finally {
    tmp.cleanup()
  }
})

test.run()
