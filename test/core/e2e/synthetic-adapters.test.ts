/**
 * Synthetic adapters hold the same adapter in every form: the routed
 * stacks' B·A equals the shared form's U·A′ (float64), each adapter's own
 * factors are its slot of the stacks, slot 0 is zero, A and B are exact in
 * binary16, and an adapter's values do not depend on how many are loaded.
 */
import {suite} from 'uvu'
import * as assert from 'uvu/assert'
import {fromFloat, toFloat32} from '../../../src/core/dtype.js'
import {syntheticAdapters} from '../../../src/core/e2e/synthetic-adapters.js'

const test = suite('e2e/synthetic-adapters')
const modules = [{name: 'model.layers.0.self_attn.q_proj', in: 32, out: 24}, {name: 'model.layers.0.self_attn.k_proj', in: 32, out: 8}]
const set = syntheticAdapters({count: 3, rank: 4, sharedK: 5, modules, seed: 2})

/** ΔW = B·A `[out, in]` in float64. */
function product(b: Float32Array, a: Float32Array, out: number, r: number, inDim: number): Float64Array {
  const d = new Float64Array(out * inDim)
  for (let o = 0; o < out; o++) for (let k = 0; k < r; k++) for (let i = 0; i < inDim; i++) d[o * inDim + i]! += b[o * r + k]! * a[k * inDim + i]!
  return d
}

test('B·A = U·A′ for every adapter and module; the shared form is exact', async () => {
  assert.is(set.sharedExact, true)
  for (const name of set.adapters) {
    const stacks = await set.factors(name, 'stacks')
    const shared = await set.factors(name, 'shared')
    for (const m of modules) {
      const s = stacks.modules.get(m.name)!
      const h = shared.modules.get(m.name)!
      assert.is(h.r, 5)
      const d1 = product(s.b, s.a, m.out, s.r, m.in)
      const d2 = product(h.b, h.a, m.out, h.r, m.in)
      let scale = 0
      for (const v of d1) scale = Math.max(scale, Math.abs(v))
      assert.ok(scale > 0)
      d1.forEach((v, i) => assert.ok(Math.abs(v - d2[i]!) <= 1e-12 * scale, `${name} ${m.name}`))
    }
  }
})

test("the stacks hold each adapter's factors in its slot, slot 0 zero; the shared stacks likewise", async () => {
  for (const m of modules) {
    const st = (await set.stacks(m.name))!
    const sh = (await set.shared!(m.name))!
    assert.ok(st.a.subarray(0, 4 * m.in).every((v) => v === 0) && st.b.subarray(0, m.out * 4).every((v) => v === 0))
    assert.ok(sh.ak.subarray(0, 5 * m.in).every((v) => v === 0))
    for (const [i, name] of set.adapters.entries()) {
      const f = (await set.factors(name, 'stacks')).modules.get(m.name)!
      assert.equal([...st.a.subarray((i + 1) * 4 * m.in, (i + 2) * 4 * m.in)], [...f.a])
      assert.equal([...st.b.subarray((i + 1) * m.out * 4, (i + 2) * m.out * 4)], [...f.b])
      const g = (await set.factors(name, 'shared')).modules.get(m.name)!
      assert.equal([...sh.ak.subarray((i + 1) * 5 * m.in, (i + 2) * 5 * m.in)], [...g.a])
    }
    // Uᵀ [K, out] is the shared factor's B [out, K] transposed
    const u = (await set.factors(set.adapters[0]!, 'shared')).modules.get(m.name)!.b
    for (let o = 0; o < m.out; o++) for (let k = 0; k < 5; k++) assert.is(sh.bk[k * m.out + o], u[o * 5 + k])
  }
})

test('A and B are exact in binary16 (16-bit adapters); ΔW is a few percent of a weight of std 1/√in', async () => {
  const f = (await set.factors(set.adapters[1]!, 'stacks')).modules.get(modules[0]!.name)!
  for (const v of [f.a, f.b]) assert.equal([...toFloat32('F16', fromFloat('F16', v))], [...v])
  const d = product(f.b, f.a, 24, 4, 32)
  const rms = Math.sqrt(d.reduce((s, v) => s + v * v, 0) / d.length)
  assert.ok(rms > 0.01 / Math.sqrt(32) && rms < 0.25 / Math.sqrt(32), `ΔW rms ${rms}`)
})

test('adapter i is the same whatever the count loaded; names are padded', async () => {
  const more = syntheticAdapters({count: 12, rank: 4, sharedK: 5, modules, seed: 2})
  assert.is(more.adapters[1], 'adapter-0001')
  const a = (await set.factors('adapter-0001', 'stacks')).modules.get(modules[0]!.name)!
  const b = (await more.factors('adapter-0001', 'stacks')).modules.get(modules[0]!.name)!
  assert.equal([...a.a], [...b.a])
  assert.is(set.bytes('stacks'), 4 * 4 * 4 * (32 + 24 + 32 + 8))
})

test.run()
