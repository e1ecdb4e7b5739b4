import {readFileSync, readdirSync} from 'node:fs'
import {join} from 'node:path'
import {suite} from 'uvu'
import * as assert from 'uvu/assert'
import {LoraAdapter} from '../../../src/core/formats/peft-adapter.js'
import {ShardedModel, openModel} from '../../../src/core/formats/sharded-model.js'
import {synthesizeAdapters} from '../../../src/core/synth/adapters.js'
import {synthesizeBase} from '../../../src/core/synth/base.js'
import {rejection, tempDir} from '../../helpers/index.js'

const test = suite('synth')

const dims = {hidden: 64, intermediate: 96, layers: 2}

test('synthetic adapters load back with the asked ranks, alphas and targets', async () => {
  const tmp = tempDir()
  try {
    const result = await synthesizeAdapters({
      ...dims,
      out: join(tmp.path, 'ad'),
      count: 3,
      ranks: [4, 8],
      targets: ['q_proj', 'down_proj'],
      dtype: 'F32',
      seed: 1,
      sharedSubspace: 0.5,
    })
    assert.equal(result.adapters.map((a) => a.name), ['adapter-0000', 'adapter-0001', 'adapter-0002'])
    const second = await LoraAdapter.load(join(tmp.path, 'ad/adapter-0001'))
    assert.is(second.config.r, 8)
    assert.is(second.config.loraAlpha, 16)
    assert.equal([...second.modules.keys()], ['model.layers.0.self_attn.q_proj', 'model.layers.0.mlp.down_proj', 'model.layers.1.self_attn.q_proj', 'model.layers.1.mlp.down_proj'])
    const down = second.module('model.layers.0.mlp.down_proj')
    assert.equal([down.in, down.out, down.r], [96, 64, 8])
    const b = (await second.readB('model.layers.0.mlp.down_proj')).toFloat32()
    assert.ok(b.some((v) => v !== 0), 'B is never all zero')
    assert.is(second.config.baseModelNameOrPath, 'synthetic/llama-h64-i96-l2')
    await second.close()
  } finally {
    tmp.cleanup()
  }
})

function filesOf(dir: string): Map<string, Buffer> {
  const out = new Map<string, Buffer>()
  for (const entry of readdirSync(dir, {recursive: true, withFileTypes: true})) {
    if (entry.isFile()) out.set(join(entry.parentPath ?? entry.path, entry.name).slice(dir.length), readFileSync(join(entry.parentPath ?? entry.path, entry.name)))
  }
  return out
}

test('the same seed gives byte-identical adapters; another seed does not', async () => {
  const tmp = tempDir()
  try {
    const options = {...dims, count: 2, ranks: [4], targets: ['q_proj' as const, 'v_proj' as const], dtype: 'F16' as const, sharedSubspace: 0.3}
    await synthesizeAdapters({...options, out: join(tmp.path, 'a'), seed: 7})
    await synthesizeAdapters({...options, out: join(tmp.path, 'b'), seed: 7})
    await synthesizeAdapters({...options, out: join(tmp.path, 'c'), seed: 8})
    const a = filesOf(join(tmp.path, 'a'))
    const b = filesOf(join(tmp.path, 'b'))
    const c = filesOf(join(tmp.path, 'c'))
    assert.equal([...a.keys()].sort(), [...b.keys()].sort())
    for (const [name, bytes] of a) assert.ok(bytes.equals(b.get(name)!), `${name} differs between runs`)
    const weights = '/adapter-0000/adapter_model.safetensors'
    assert.not.ok(a.get(weights)!.equals(c.get(weights)!))
  } finally {
    tmp.cleanup()
  }
})

test('--shared-subspace 1 puts every adapter\'s B in one column space of rank max(r)', async () => {
  const tmp = tempDir()
  try {
    await synthesizeAdapters({...dims, out: join(tmp.path, 'ad'), count: 6, ranks: [2], targets: ['q_proj'], dtype: 'F32', seed: 3, sharedSubspace: 1})
    // stack the B's side by side ([64, 12]) and check that their rank is 2 via Gram–Schmidt residuals
    const columns: Float64Array[] = []
    for (let i = 0; i < 6; i++) {
      const ad = await LoraAdapter.load(join(tmp.path, `ad/adapter-000${i}`))
      const b = (await ad.readB('model.layers.0.self_attn.q_proj')).toFloat64()
      for (let c = 0; c < 2; c++) columns.push(Float64Array.from({length: 64}, (_, row) => b[row * 2 + c]!))
      await ad.close()
    }
    const basis: Float64Array[] = []
    for (const col of columns) {
      const v = Float64Array.from(col)
      for (const q of basis) {
        const dot = v.reduce((s, x, i) => s + x * q[i]!, 0)
        for (let i = 0; i < v.length; i++) v[i]! -= dot * q[i]!
      }
      const norm = Math.hypot(...v)
      const scale = Math.hypot(...col)
      if (norm > 1e-5 * scale) basis.push(v.map((x) => x / norm))
    }
    assert.is(basis.length, 2)
  } finally {
    tmp.cleanup()
  }
})

test('synthetic base: Llama names, realistic scale, config.json, and sharding with an index', async () => {
  const tmp = tempDir()
  try {
    const single = await synthesizeBase({...dims, vocab: 100, out: join(tmp.path, 'one'), dtype: 'F32', seed: 0})
    assert.equal(single.files, ['model.safetensors', 'config.json'])
    const model = await openModel(join(tmp.path, 'one'))
    const q = (await model.readTensor('model.layers.1.self_attn.q_proj.weight')).toFloat64()
    const std = Math.sqrt(q.reduce((s, x) => s + x * x, 0) / q.length)
    assert.ok(Math.abs(std - 1 / Math.sqrt(64)) < 0.01, `std ${std}`)
    assert.equal(model.tensors.get('model.layers.0.mlp.down_proj.weight')!.shape, [64, 96])
    assert.equal(model.tensors.get('lm_head.weight')!.shape, [100, 64])
    await model.close()
    const config = JSON.parse(readFileSync(join(tmp.path, 'one/config.json'), 'utf8'))
    assert.equal([config.hidden_size, config.intermediate_size, config.num_hidden_layers, config.vocab_size], [64, 96, 2, 100])

    const sharded = await synthesizeBase({...dims, vocab: 100, out: join(tmp.path, 'sharded'), dtype: 'F32', seed: 0, shardSize: 40_000})
    assert.ok(sharded.files.includes('model.safetensors.index.json'))
    const shards = await openModel(join(tmp.path, 'sharded'))
    assert.instance(shards, ShardedModel)
    assert.ok((shards as ShardedModel).shards.size > 2)
    // same seed, same tensor bytes whatever the sharding
    const one = await openModel(join(tmp.path, 'one'))
    for (const name of one.tensors.keys()) {
      assert.equal([...(await shards.readTensor(name)).bytes], [...(await one.readTensor(name)).bytes], name)
    }
    await one.close()
    await shards.close()
  } finally {
    tmp.cleanup()
  }
})

test('refuses out-of-range options and existing outputs', async () => {
  const tmp = tempDir()
  try {
    const base = {...dims, out: join(tmp.path, 'x'), count: 1, ranks: [4], targets: ['q_proj' as const], dtype: 'F32' as const, seed: 0}
    assert.match((await rejection(synthesizeAdapters({...base, sharedSubspace: 1.5}))).message, /--shared-subspace must be between 0 and 1/)
    assert.match((await rejection(synthesizeAdapters({...base, sharedSubspace: 0, ranks: [100]}))).message, /rank 100 is larger than q_proj's smaller dimension \(64\)/)
    await synthesizeAdapters({...base, sharedSubspace: 0})
    const exists = await rejection(synthesizeAdapters({...base, sharedSubspace: 0}))
    assert.is(exists.code, 'OUTPUT_EXISTS')
  } finally {
    tmp.cleanup()
  }
})

test.run()
