import {suite} from 'uvu'
import * as assert from 'uvu/assert'
import {ModuleInput, moduleSourceFromInput} from '../../../src/core/compress/module-source.js'
import {projectModule} from '../../../src/core/compress/project-module.js'
import {basisErrors, computeSharedBasis} from '../../../src/core/compress/shared-basis.js'
import {FloatOutputDType, toFloat64} from '../../../src/core/dtype.js'
import {MatMulEngine} from '../../../src/core/linalg/matmul-engine.js'
import {Rng} from '../../../src/core/random.js'
import {deltaOf, syntheticModule} from '../../helpers/compress-fixtures.js'
import {product, relativeDifference} from '../../helpers/reference-svd.js'

const test = suite('compress project-module')
const engine = new MatMulEngine(2)

const module = syntheticModule({in: 20, out: 16, ranks: [4, 2, 4, 3, 4, 4], sharedSubspace: 0.6, gains: [1, 0.5, 2, 1, 4, 0.25], seed: 11})

/** Run the projection, collecting what the sink receives per adapter. */
async function project(m: ModuleInput, k: number, dtype: FloatOutputDType) {
  const source = moduleSourceFromInput(m)
  const basis = await computeSharedBasis(source, {engine, kMax: k})
  const stored = new Map<number, Float64Array>()
  const result = await projectModule(source, basis, k, {
    engine,
    dtype,
    chunk: 4,
    async sink(start, count, bytes) {
      const values = toFloat64(dtype, bytes)
      for (let t = 0; t < count; t++) {
        assert.not.ok(stored.has(start + t), 'each adapter is written once')
        stored.set(start + t, values.slice(t * k * m.in, (t + 1) * k * m.in))
      }
    },
  })
  return {basis, result, stored, u: toFloat64(dtype, result.sharedB)}
}

for (const dtype of ['F32', 'F16', 'BF16'] as const) {
  test(`${dtype}: reported errors equal ‖ΔW_i − Û Â'_i‖ / ‖ΔW_i‖ formed explicitly from the stored values`, async () => {
    const k = 5
    const {result, stored, u} = await project(module, k, dtype)
    assert.is(stored.size, module.adapters.length)
    module.adapters.forEach((_, i) => {
      const approx = product(u, module.out, k, stored.get(i)!, module.in)
      const explicit = relativeDifference(deltaOf(module, i), approx)
      assert.ok(Math.abs(result.errors[i]! - explicit) < 1e-9, `adapter ${i}: ${result.errors[i]} vs ${explicit}`)
    })
  })
}

test('stored as F32, the errors are the optimum ones; narrower dtypes add rounding on top', async () => {
  const k = 5
  const f32 = await project(module, k, 'F32')
  const optimum = basisErrors(f32.basis, k)
  for (let i = 0; i < optimum.length; i++) assert.ok(Math.abs(f32.result.errors[i]! - optimum[i]!) < 1e-6)
  const bf16 = await project(module, k, 'BF16')
  // Eckart–Young: no rank-K product beats the optimum in total squared error (one adapter alone may gain)
  const norms = f32.basis.deltaNorms2
  let total = 0
  let best = 0
  for (let i = 0; i < optimum.length; i++) {
    total += bf16.result.errors[i]! ** 2 * norms[i]!
    best += optimum[i]! ** 2 * norms[i]!
    assert.ok(Math.abs(bf16.result.errors[i]! - optimum[i]!) < 0.02)
  }
  assert.ok(total >= best * (1 - 1e-12), 'rounding cannot beat the optimum in total')
  assert.ok(total > best, 'BF16 rounding costs something')
})

test('the compressed forward x Â\'ᵀ Ûᵀ matches x ΔWᵀ within the reported error', async () => {
  const k = 4
  const {result, stored, u} = await project(module, k, 'F16')
  const batch = 7
  const x = new Rng(3, 'forward').fillNormal(new Float64Array(batch * module.in))
  let xNorm = 0
  for (const v of x) xNorm += v * v
  xNorm = Math.sqrt(xNorm)
  module.adapters.forEach((_, i) => {
    const delta = deltaOf(module, i)
    // y = x ΔWᵀ [batch, out] and y' = (x Â'ᵀ) Ûᵀ
    const y = product(x, batch, module.in, transposed(delta, module.out, module.in), module.out)
    const low = product(x, batch, module.in, transposed(stored.get(i)!, k, module.in), k)
    const yc = product(low, batch, k, transposed(u, module.out, k), module.out)
    let diff = 0
    let dNorm = 0
    for (let j = 0; j < y.length; j++) diff += (y[j]! - yc[j]!) ** 2
    for (const v of delta) dNorm += v * v
    // ‖x (ΔW − Û Â')ᵀ‖_F ≤ ‖x‖_F ‖ΔW − Û Â'‖_F = ‖x‖_F · e_i · ‖ΔW_i‖_F
    assert.ok(Math.sqrt(diff) <= xNorm * result.errors[i]! * Math.sqrt(dNorm) * (1 + 1e-9) + 1e-12, `adapter ${i}`)
    assert.ok(Math.sqrt(diff) > 0)
  })
})

test('k must lie within the basis', async () => {
  const source = moduleSourceFromInput(module)
  const basis = await computeSharedBasis(source, {engine, kMax: 3})
  for (const k of [0, 4]) {
    let message = ''
    await projectModule(source, basis, k, {engine, dtype: 'F32'}).catch((e: Error) => (message = e.message))
    assert.match(message, /k must be in 1\.\.3/)
  }
})

function transposed(a: Float64Array, rows: number, cols: number): Float64Array {
  const t = new Float64Array(a.length)
  for (let i = 0; i < rows; i++) for (let j = 0; j < cols; j++) t[j * rows + i] = a[i * cols + j]!
  return t
}

test.after(async () => {
  await engine.release()
})

test.run()
