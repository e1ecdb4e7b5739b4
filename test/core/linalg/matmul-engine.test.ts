import {suite} from 'uvu'
import * as assert from 'uvu/assert'
import {matmul, transpose} from '../../../src/core/linalg/dense.js'
import {MatMulEngine, TS_MAX_FLOPS} from '../../../src/core/linalg/matmul-engine.js'
import {orthonormalizeBlock} from '../../../src/core/linalg/orthonormal-block.js'
import {Rng} from '../../../src/core/random.js'
import {maxAbsDiff, rejection} from '../../helpers/index.js'

const test = suite('linalg matmul engine')
const engine = new MatMulEngine(2)

const random = (n: number, seed: number) => new Rng(seed, 'engine-test').fillNormal(new Float64Array(n))

test('large float64 products on ORT equal the TypeScript product (all transposition cases)', async () => {
  const [m, k, n] = [60, 80, 50]
  assert.ok(2 * m * k * n > TS_MAX_FLOPS, 'this product goes to ORT')
  const a = random(m * k, 1)
  const b = random(k * n, 2)
  const ref = matmul(a, m, k, b, n)
  assert.ok(maxAbsDiff(await engine.matmul(a, [m, k], b, [k, n]), ref) < 1e-12)
  assert.ok(maxAbsDiff(await engine.matmul(transpose(a, m, k), [k, m], b, [k, n], {transposeA: true}), ref) < 1e-12)
  assert.ok(maxAbsDiff(await engine.matmul(a, [m, k], transpose(b, k, n), [n, k], {transposeB: true}), ref) < 1e-12)
})

test('float32 products stay float32 and agree to float32 precision', async () => {
  const [m, k, n] = [64, 64, 64]
  const a = Float32Array.from(random(m * k, 3))
  const b = Float32Array.from(random(k * n, 4))
  const c = await engine.matmul(a, [m, k], b, [k, n])
  assert.instance(c, Float32Array)
  assert.ok(maxAbsDiff(c, matmul(a, m, k, b, n)) < 1e-4)
})

test('batched and broadcast products, on ORT and in TypeScript', async () => {
  for (const [m, k, n, batch] of [
    [30, 40, 20, 4],
    [3, 4, 2, 3],
  ] as const) {
    const a = random(batch * m * k, 5)
    const b = random(k * n, 6)
    const b3 = random(batch * k * n, 7)
    const both = await engine.matmul(a, [batch, m, k], b3, [batch, k, n])
    const left = await engine.matmul(a.subarray(0, m * k), [m, k], b3, [batch, k, n])
    const right = await engine.matmul(a, [batch, m, k], b, [k, n])
    for (let t = 0; t < batch; t++) {
      const at = a.subarray(t * m * k, (t + 1) * m * k)
      const bt = b3.subarray(t * k * n, (t + 1) * k * n)
      assert.ok(maxAbsDiff(both.subarray(t * m * n, (t + 1) * m * n), matmul(at, m, k, bt, n)) < 1e-12)
      assert.ok(maxAbsDiff(left.subarray(t * m * n, (t + 1) * m * n), matmul(a.subarray(0, m * k), m, k, bt, n)) < 1e-12)
      assert.ok(maxAbsDiff(right.subarray(t * m * n, (t + 1) * m * n), matmul(at, m, k, b, n)) < 1e-12)
    }
  }
})

test('mismatched operands are refused', async () => {
  const a = new Float64Array(6)
  assert.match((await rejection(engine.matmul(a, [2, 3], new Float64Array(8), [4, 2]))).message, /inner dimensions/)
  assert.match((await rejection(engine.matmul(a, [2, 4], a, [3, 2]))).message, /hold 8/)
  assert.match((await rejection(engine.matmul(a, [2, 3], new Float32Array(6) as unknown as Float64Array, [3, 2]))).message, /same precision/)
})

test('orthonormalizeBlock: orthonormal columns with nested spans, also for a dependent block', async () => {
  const rows = 200
  const cols = 12
  const y = random(rows * cols, 8)
  for (let i = 0; i < rows; i++) y[i * cols + 5] = 3 * y[i * cols + 1]! // a dependent column: Householder fallback
  for (const block of [random(rows * cols, 9), y]) {
    const q = await orthonormalizeBlock(engine, block, rows, cols)
    const gram = matmul(transpose(q, rows, cols), cols, rows, q, cols)
    for (let i = 0; i < cols; i++) for (let j = 0; j < cols; j++) assert.ok(Math.abs(gram[i * cols + j]! - (i === j ? 1 : 0)) < 1e-12)
    // nesting: column 0 of q is parallel to column 0 of the block
    let dot = 0
    let norm = 0
    for (let i = 0; i < rows; i++) {
      dot += q[i * cols]! * block[i * cols]!
      norm += block[i * cols]! ** 2
    }
    assert.ok(Math.abs(Math.abs(dot) - Math.sqrt(norm)) < 1e-9)
  }
})

test.after(async () => {
  await engine.release()
})

test.run()
