import {suite} from 'uvu'
import * as assert from 'uvu/assert'
import {InputError} from '../../../src/core/errors.js'
import {Q4_0Encoder, dequantizeQ4_0, q4_0RowProblem, quantizeQ4_0} from '../../../src/core/quant/q4-0.js'
import {Rng} from '../../../src/core/random.js'

const test = suite('quant/q4-0')

test('hand-computed block: d = v/-8 as f16, q = trunc(x/d + 8.5), element j low nibble, j+16 high nibble', () => {
  const x = new Float32Array(32)
  for (let j = 0; j < 32; j++) x[j] = j - 16 // -16 … 15: v = -16, d = 2
  const b = quantizeQ4_0(x)
  assert.is(b.length, 18)
  assert.equal([b[0], b[1]], [0x00, 0x40]) // f16 2.0
  // x0 = -16 → 0.5 → 0; x16 = 0 → 8.5 → 8
  assert.is(b[2], 0x80)
  // x15 = -1 → 8.0 → 8; x31 = 15 → 16 → clamped to 15
  assert.is(b[17], 0xf8)
  // x1 = -15 → 1.0 → 1; x17 = 1 → 9.0 → 9
  assert.is(b[3], 0x91)
  const y = dequantizeQ4_0(b)
  assert.equal([y[0], y[1], y[15], y[16], y[17], y[31]], [-16, -14, 0, 0, 2, 14])
})

test('the sign of the largest-magnitude element is kept, and the first one wins a tie', () => {
  const x = new Float32Array(32)
  x[0] = 8
  x[1] = -8
  x[2] = 3
  const b = quantizeQ4_0(x)
  assert.equal([b[0], b[1]], [0x00, 0xbc]) // f16 -1.0: d = 8 / -8
  const y = dequantizeQ4_0(b)
  assert.is(y[0], 8) // q = trunc(-8 + 8.5) = 0 → (0 - 8) · -1
  assert.is(y[1], -7) // q = trunc(8 + 8.5) = 16 → clamped 15 → (15 - 8) · -1
  assert.is(y[2], 3) // q = trunc(-3 + 8.5) = 5 → 3
})

test('an all-zero block stores d = 0/-8 = -0 (f16 0x8000, as llama.cpp does) and code 8 and decodes to zeros', () => {
  const b = quantizeQ4_0(new Float32Array(64))
  assert.equal([...b.subarray(0, 18)], [0x00, 0x80, ...new Array(16).fill(0x88)])
  assert.ok(dequantizeQ4_0(b).every((v) => v === 0))
})

test('a block containing NaN is refused, naming the element', () => {
  const x = new Float32Array(64)
  x[40] = Number.NaN
  assert.throws(() => quantizeQ4_0(x), (e: unknown) => e instanceof InputError && e.code === 'QUANT_NOT_FINITE' && /element 40 is NaN/.test(e.message))
})

test('one huge outlier: the rest of the block rounds to 0, the outlier is exact', () => {
  const x = new Float32Array(32).fill(0.1)
  x[7] = 1000
  const y = dequantizeQ4_0(quantizeQ4_0(x))
  assert.is(y[7], 1000) // d = -125 (exact in f16), q = 0
  for (let j = 0; j < 32; j++) if (j !== 7) assert.is(y[j], 0)
})

test('a block whose scale overflows f16 is refused', () => {
  const x = new Float32Array(32)
  x[0] = 1e6
  assert.throws(() => quantizeQ4_0(x), (e: unknown) => e instanceof InputError && e.code === 'QUANT_SCALE_OVERFLOW')
})

test('precondition as a sentence', () => {
  assert.is(q4_0RowProblem(48), 'row size (48) is not a multiple of Q4_0 block size (32)')
  assert.is(q4_0RowProblem(64), undefined)
})

test('round trip within |d| (plus f16 rounding of d) on random rows; streaming equals one push', () => {
  const x = new Rng(4, 'q4').fillNormal(new Float32Array(32 * 40))
  const whole = quantizeQ4_0(x)
  const enc = new Q4_0Encoder(x.length)
  enc.push(x.subarray(0, 96))
  enc.push(x.subarray(96))
  assert.equal(enc.finish(), whole)
  const y = dequantizeQ4_0(whole)
  for (let b = 0; b < 40; b++) {
    let amax = 0
    for (let j = 0; j < 32; j++) amax = Math.max(amax, Math.abs(x[b * 32 + j]!))
    for (let j = 0; j < 32; j++) assert.ok(Math.abs(x[b * 32 + j]! - y[b * 32 + j]!) <= (amax / 8) * 1.002)
  }
})

test.run()
