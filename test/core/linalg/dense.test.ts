import {suite} from 'uvu'
import * as assert from 'uvu/assert'
import {choleskyUpper, inverseSpd, invertUpper, matmul, matmulTransposeA, solveUpperRight, transpose} from '../../../src/core/linalg/dense.js'
import {householderQr} from '../../../src/core/linalg/qr.js'
import {symmetricEigen} from '../../../src/core/linalg/symmetric-eigen.js'
import {Rng} from '../../../src/core/random.js'
import {maxAbsDiff} from '../../helpers/index.js'
import {product} from '../../helpers/reference-svd.js'

const test = suite('linalg dense')

const random = (n: number, seed: number) => new Rng(seed, 'dense-test').fillNormal(new Float64Array(n))

test('products and transposes agree with the textbook triple loop', () => {
  const a = random(5 * 7, 1)
  const b = random(7 * 3, 2)
  assert.ok(maxAbsDiff(matmul(a, 5, 7, b, 3), product(a, 5, 7, b, 3)) < 1e-13)
  assert.ok(maxAbsDiff(matmulTransposeA(transpose(a, 5, 7), 7, 5, b, 3), product(a, 5, 7, b, 3)) < 1e-13)
  assert.equal(Array.from(transpose([1, 2, 3, 4, 5, 6], 2, 3)), [1, 4, 2, 5, 3, 6])
  assert.throws(() => matmul(a, 5, 6, b, 3), /expected 30/)
})

test('a hand-worked Cholesky factor, its inverse, and the inverse of an SPD matrix', () => {
  // [[4, 2], [2, 5]] = Rᵀ R with R = [[2, 1], [0, 2]]
  const r = choleskyUpper([4, 2, 2, 5], 2)!
  assert.equal(Array.from(r), [2, 1, 0, 2])
  assert.equal(Array.from(invertUpper(r, 2)), [0.5, -0.25, 0, 0.5])
  const inv = inverseSpd([4, 2, 2, 5], 2)!
  assert.ok(maxAbsDiff(inv, [5 / 16, -2 / 16, -2 / 16, 4 / 16]) < 1e-15)
  const y = Float64Array.from([2, 5])
  assert.equal(Array.from(solveUpperRight(y, 1, r, 2)), [1, 2]) // x R = y with x = [1, 2]
})

test('Cholesky refuses singular and indefinite matrices', () => {
  assert.is(choleskyUpper([1, 1, 1, 1], 2), undefined)
  assert.is(choleskyUpper([1, 2, 2, 1], 2), undefined)
  assert.is(inverseSpd([0, 0, 0, 0], 2), undefined)
})

test('thin QR: Q orthonormal, R upper triangular with a non-negative diagonal, QR = A', () => {
  const m = 40
  const n = 7
  const a = random(m * n, 3)
  const {q, r} = householderQr(a, m, n)
  assert.ok(maxAbsDiff(product(q!, m, n, r, n), a) < 1e-13)
  assert.ok(maxAbsDiff(matmulTransposeA(q!, m, n, q!, n), identity(n)) < 1e-14)
  for (let i = 0; i < n; i++) {
    assert.ok(r[i * n + i]! >= 0)
    for (let j = 0; j < i; j++) assert.is(r[i * n + j], 0)
  }
  assert.equal(Array.from(householderQr(a, m, n, {wantQ: false}).r), Array.from(r))
})

test('thin QR of rank-deficient columns keeps Q orthonormal and the spans nested', () => {
  const m = 10
  const a = new Float64Array(m * 3)
  for (let i = 0; i < m; i++) {
    a[i * 3] = i + 1
    a[i * 3 + 1] = 2 * (i + 1) // dependent on column 0
    a[i * 3 + 2] = i % 3
  }
  const {q, r} = householderQr(a, m, 3)
  assert.ok(maxAbsDiff(matmulTransposeA(q!, m, 3, q!, 3), identity(3)) < 1e-14)
  assert.ok(maxAbsDiff(product(q!, m, 3, r, 3), a) < 1e-12)
  assert.ok(Math.abs(r[4]!) < 1e-12, 'the dependent column gives a zero pivot')
  assert.throws(() => householderQr(a, 3, 10), /at least as many rows/)
})

test('symmetric eigen-decomposition: A V = V Λ, V orthonormal, values largest first', () => {
  const n = 30
  const x = random(n * n, 4)
  const s = product(x, n, n, transpose(x, n, n), n)
  const {values, vectors} = symmetricEigen(s, n)
  assert.ok(maxAbsDiff(matmulTransposeA(vectors, n, n, vectors, n), identity(n)) < 1e-13)
  const av = product(s, n, n, vectors, n)
  const vl = new Float64Array(n * n)
  for (let i = 0; i < n; i++) for (let j = 0; j < n; j++) vl[i * n + j] = vectors[i * n + j]! * values[j]!
  assert.ok(maxAbsDiff(av, vl) < 1e-11 * values[0]!)
  for (let j = 1; j < n; j++) assert.ok(values[j - 1]! >= values[j]!)
})

test('symmetric eigen-decomposition of a hand-worked 2×2 and of a diagonal with repeated values', () => {
  // [[2, 1], [1, 2]]: eigenvalues 3 and 1, vectors (1, 1)/√2 and (1, −1)/√2
  const {values, vectors} = symmetricEigen([2, 1, 1, 2], 2)
  assert.ok(maxAbsDiff(values, [3, 1]) < 1e-15)
  assert.ok(Math.abs(Math.abs(vectors[0]!) - Math.SQRT1_2) < 1e-15 && Math.abs(vectors[0]! - vectors[2]!) < 1e-15)
  const d = symmetricEigen([1, 0, 0, 0, 3, 0, 0, 0, 3], 3)
  assert.equal(Array.from(d.values), [3, 3, 1])
  assert.throws(() => symmetricEigen([1, NaN, NaN, 1], 2), /non-finite/)
})

function identity(n: number): Float64Array {
  const m = new Float64Array(n * n)
  for (let i = 0; i < n; i++) m[i * n + i] = 1
  return m
}

test.run()
