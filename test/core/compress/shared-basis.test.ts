import {suite} from 'uvu'
import * as assert from 'uvu/assert'
import {ModuleInput, moduleSourceFromInput} from '../../../src/core/compress/module-source.js'
import {basisErrors, computeSharedBasis} from '../../../src/core/compress/shared-basis.js'
import {MatMulEngine} from '../../../src/core/linalg/matmul-engine.js'
import {concatenatedDeltas, deltaOf, syntheticModule} from '../../helpers/compress-fixtures.js'
import {leftSingularVectors, projectionError} from '../../helpers/reference-svd.js'

const test = suite('compress shared-basis')
const engine = new MatMulEngine(2)

/** Reference errors of every adapter at every k ≤ kMax: SVD of the explicit concatenation, explicit projections. */
function referenceErrors(module: ModuleInput, kMax: number, normalize = false): number[][] {
  const n = module.adapters.length
  const x = concatenatedDeltas(module, normalize)
  const {u} = leftSingularVectors(x, module.out, n * module.in)
  const uCols = u.length / module.out
  return Array.from({length: kMax + 1}, (_, k) => Array.from({length: n}, (_, i) => projectionError(deltaOf(module, i), module.out, module.in, u, uCols, Math.min(k, uCols))))
}

function assertErrorsMatch(module: ModuleInput, kMax: number, errorsAt: (k: number) => Float64Array, normalize = false, tolerance = 1e-6): void {
  const ref = referenceErrors(module, kMax, normalize)
  for (let k = 1; k <= kMax; k++) {
    const got = errorsAt(k)
    for (let i = 0; i < module.adapters.length; i++) {
      assert.ok(Math.abs(got[i]! - ref[k]![i]!) <= tolerance, `k=${k} adapter ${i}: ${got[i]} vs reference ${ref[k]![i]}`)
    }
  }
}

// Σr = 24 > out = 16: the Gram is C Cᵀ (out side).
const wide = syntheticModule({in: 20, out: 16, ranks: [4, 4, 4, 4, 4, 4], sharedSubspace: 0.6, alphas: [8, 16, 4, 8, 32, 8], gains: [1, 0.5, 2, 1, 4, 0.25]})
// Σr = 12 < out = 30: the Gram is Cᵀ C (rank side), with mixed ranks.
const tall = syntheticModule({in: 18, out: 30, ranks: [2, 4, 3, 1, 2], sharedSubspace: 0.5, seed: 3})

test('errors equal a float64 SVD of the explicit [ΔW_1 … ΔW_N] at every k (out-side Gram)', async () => {
  const basis = await computeSharedBasis(moduleSourceFromInput(wide), {engine, kMax: 16})
  assert.is(basis.method, 'dense')
  assertErrorsMatch(wide, 16, (k) => basisErrors(basis, k))
})

test('errors equal the reference for mixed ranks when Σr < out (rank-side Gram)', async () => {
  const basis = await computeSharedBasis(moduleSourceFromInput(tall), {engine, kMax: 12})
  assert.is(basis.kMax, 12)
  assertErrorsMatch(tall, 12, (k) => basisErrors(basis, k))
})

test('--normalize: errors equal the reference SVD of unit-norm deltas', async () => {
  const basis = await computeSharedBasis(moduleSourceFromInput(wide), {engine, kMax: 10, normalize: true})
  assertErrorsMatch(wide, 10, (k) => basisErrors(basis, k), true)
  const plain = await computeSharedBasis(moduleSourceFromInput(wide), {engine, kMax: 10})
  // the smallest adapter (gain 0.25) loses more without normalization than with it
  assert.ok(basisErrors(plain, 3)[5]! > basisErrors(basis, 3)[5]!)
})

test('the iterative eigensolver gives the same errors as the reference', async () => {
  const module = syntheticModule({in: 24, out: 96, ranks: Array(14).fill(8), sharedSubspace: 0.7, seed: 5})
  const basis = await computeSharedBasis(moduleSourceFromInput(module), {engine, kMax: 12, method: 'iterative'})
  assert.is(basis.method, 'iterative')
  assert.ok(basis.converged)
  assertErrorsMatch(module, 12, (k) => basisErrors(basis, k))
})

test('errors never grow with k, and vanish at k = min(out, Σr)', async () => {
  for (const module of [wide, tall]) {
    const source = moduleSourceFromInput(module)
    const full = Math.min(module.out, module.adapters.reduce((s, a) => s + a.r, 0))
    const basis = await computeSharedBasis(source, {engine, kMax: full + 5})
    assert.is(basis.kMax, full, 'kMax is clamped to the useful rank')
    for (let k = 1; k <= full; k++) {
      const now = basisErrors(basis, k)
      const before = basisErrors(basis, k - 1)
      for (let i = 0; i < now.length; i++) assert.ok(now[i]! <= before[i]! + 1e-12)
    }
    for (const e of basisErrors(basis, full)) assert.ok(e < 1e-6, `full-rank error ${e}`)
  }
})

test('the basis is orthonormal; a zero adapter and a rank-deficient A are handled', async () => {
  const module = syntheticModule({in: 12, out: 10, ranks: [3, 3, 3, 3], sharedSubspace: 0.5, seed: 8})
  const adapters = [...module.adapters]
  adapters[1] = {...adapters[1]!, b: new Float32Array(adapters[1]!.b.length)} // B = 0: ΔW = 0
  const a = Float32Array.from(adapters[2]!.a)
  a.set(a.subarray(0, 12), 12) // row 1 = row 0: A A^T is singular
  adapters[2] = {...adapters[2]!, a}
  const odd = {...module, adapters}
  const basis = await computeSharedBasis(moduleSourceFromInput(odd), {engine, kMax: 6})
  for (let i = 0; i < 6; i++) {
    for (let j = 0; j < 6; j++) {
      let dot = 0
      for (let r = 0; r < 10; r++) dot += basis.u[r * 6 + i]! * basis.u[r * 6 + j]!
      assert.ok(Math.abs(dot - (i === j ? 1 : 0)) < 1e-12)
    }
  }
  assert.is(basisErrors(basis, 2)[1], 0, 'a zero delta has nothing to lose')
  assertErrorsMatch(odd, 6, (k) => basisErrors(basis, k))
})

test('bad in-memory input is refused', () => {
  assert.throws(() => moduleSourceFromInput({name: 'm', in: 4, out: 4, adapters: []}), /no adapters/)
  const ad = {slot: 1, r: 2, scaling: 1, a: new Float32Array(8), b: new Float32Array(7)}
  assert.throws(() => moduleSourceFromInput({name: 'm', in: 4, out: 4, adapters: [ad]}), /B has 7 values/)
  assert.throws(() => moduleSourceFromInput({name: 'm', in: 4, out: 4, adapters: [{...ad, b: new Float32Array(8)}, {...ad, b: new Float32Array(8)}]}), /slots must be increasing/)
})

test.after(async () => {
  await engine.release()
})

test.run()
