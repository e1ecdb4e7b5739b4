import {suite} from 'uvu'
import * as assert from 'uvu/assert'
import {matmul, transpose} from '../../../src/core/linalg/dense.js'
import {MatMulEngine} from '../../../src/core/linalg/matmul-engine.js'
import {orthonormalizeColumns} from '../../../src/core/linalg/orthonormalize.js'
import {symmetricEigen} from '../../../src/core/linalg/symmetric-eigen.js'
import {topEigenpairs} from '../../../src/core/linalg/top-eigen.js'
import {Rng} from '../../../src/core/random.js'
import {rejection} from '../../helpers/index.js'

const test = suite('linalg top-eigen')
const engine = new MatMulEngine(2)

/** G = Q diag(λ) Qᵀ with a random orthonormal Q and the given spectrum. */
function withSpectrum(values: number[], seed: number): Float64Array {
  const n = values.length
  const q = orthonormalizeColumns(new Rng(seed, 'spectrum').fillNormal(new Float64Array(n * n)), n, n)
  const scaled = new Float64Array(n * n)
  for (let i = 0; i < n; i++) for (let j = 0; j < n; j++) scaled[i * n + j] = q[i * n + j]! * values[j]!
  return matmul(scaled, n, n, transpose(q, n, n), n)
}

/** 1 − |cos| of the angle between column j of two [n, ·] matrices. */
function misalignment(a: Float64Array, aCols: number, b: Float64Array, bCols: number, n: number, j: number): number {
  let dot = 0
  for (let i = 0; i < n; i++) dot += a[i * aCols + j]! * b[i * bCols + j]!
  return 1 - Math.abs(dot)
}

test('top eigenpairs of a matrix with a dominant block and a slowly decaying tail match the dense solver', async () => {
  const n = 300
  // 6 dominant values (the shared subspace), then a flat-ish tail with small gaps
  const spectrum = Array.from({length: n}, (_, i) => (i < 6 ? 400 - 10 * i : 10 * 0.995 ** i))
  const g = withSpectrum(spectrum, 1)
  const k = 20
  const result = await topEigenpairs(Float32Array.from(g), n, k, {engine, seed: 3})
  assert.ok(result.converged)
  const dense = symmetricEigen(g, n)
  for (let j = 0; j < k; j++) {
    assert.ok(Math.abs(result.values[j]! - dense.values[j]!) < 1e-4 * dense.values[0]!, `value ${j}`)
    assert.ok(misalignment(result.vectors, result.columns, dense.vectors, n, n, j) < 1e-6, `vector ${j}`)
  }
})

test('an exactly rank-deficient matrix converges (its zero eigenvalues are float32 noise)', async () => {
  const n = 200
  const g = withSpectrum(Array.from({length: n}, (_, i) => (i < 5 ? 5 - i : 0)), 2)
  const result = await topEigenpairs(Float32Array.from(g), n, 12, {engine})
  assert.ok(result.converged)
  const dense = symmetricEigen(g, n)
  for (let j = 0; j < 5; j++) assert.ok(misalignment(result.vectors, result.columns, dense.vectors, n, n, j) < 1e-8)
})

test('results are deterministic for a seed, orthonormal, and the dense path is taken for a block ≥ n', async () => {
  const n = 120
  const g = Float32Array.from(withSpectrum(Array.from({length: n}, (_, i) => 1 / (i + 1)), 4))
  const a = await topEigenpairs(g, n, 10, {engine, seed: 9})
  const b = await topEigenpairs(g, n, 10, {engine, seed: 9})
  assert.equal(Array.from(a.values), Array.from(b.values))
  const gram = matmul(transpose(a.vectors, n, a.columns), a.columns, n, a.vectors, a.columns)
  for (let i = 0; i < a.columns; i++) for (let j = 0; j < a.columns; j++) assert.ok(Math.abs(gram[i * a.columns + j]! - (i === j ? 1 : 0)) < 1e-10)
  const full = await topEigenpairs(g, n, 115, {engine})
  assert.is(full.columns, n)
  assert.is(full.iterations, 0)
  assert.match((await rejection(topEigenpairs(g, n, 0, {engine}))).message, /k must be/)
})

test.after(async () => {
  await engine.release()
})

test.run()
