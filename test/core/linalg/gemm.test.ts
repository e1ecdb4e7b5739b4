import {suite} from 'uvu'
import * as assert from 'uvu/assert'
import {fromFloat, toFloat32} from '../../../src/core/dtype.js'
import {gemm, gemmAddHalf} from '../../../src/core/linalg/matmul-engine.js'
import {Rng} from '../../../src/core/random.js'

const test = suite('linalg/gemm')

test('gemmAddHalf = f16(A·B + f32(C)) bit for bit, including overflow to Inf, subnormals, zeros and ties', async () => {
  const m = 37
  const k = 5
  const n = 29
  const rng = new Rng(3, 'gemm-half')
  const a = rng.fillNormal(new Float32Array(m * k), 1)
  const b = rng.fillNormal(new Float32Array(k * n), 1e-3)
  const c32 = rng.fillNormal(new Float32Array(m * n), 0.1)
  // values whose sums land on the edges of binary16: the largest finite, past it, subnormal, zero
  const edges = [65504, 65519, 65520, -70000, 6e-8, 3e-5, 0, -0, 1e-9]
  edges.forEach((v, i) => (c32[i] = v))
  const c16 = new Uint16Array(fromFloat('F16', c32).buffer)
  const got = await gemmAddHalf(a, [m, k], b, [k, n], c16)
  const expected = new Uint16Array(fromFloat('F16', await gemm(a, [m, k], b, [k, n], toFloat32('F16', new Uint8Array(c16.buffer)))).buffer)
  assert.equal(Array.from(got), Array.from(expected))
  assert.ok(got.some((h) => (h & 0x7fff) === 0x7c00), 'an overflow to Inf is among the cases')
})

test('gemmAddHalf with an empty inner dimension returns C unchanged', async () => {
  const c16 = new Uint16Array([0x3c00, 0xbc00])
  assert.equal(Array.from(await gemmAddHalf(new Float32Array(0), [2, 0], new Float32Array(0), [0, 1], c16)), [0x3c00, 0xbc00])
})

test.run()
