import {suite} from 'uvu'
import * as assert from 'uvu/assert'
import {InputError} from '../../../src/core/errors.js'
import {dequantizeInt4, int4RowProblem, quantizeInt4, roundHalfEven} from '../../../src/core/quant/int4.js'
import {Rng} from '../../../src/core/random.js'

const test = suite('quant/int4')

test('round half to even', () => {
  assert.equal([0.5, 1.5, 2.5, -1.5, -2.5, 2.4, 2.6].map(roundHalfEven), [0, 2, 2, -2, -2, 2, 3])
})

test('hand-computed group: scale = f16(range/15), zero = round(-lo/scale), element 2j in the low nibble', () => {
  const e = quantizeInt4(Float32Array.from([-1, 0, 0.5, 2]), 1, 4, 4)
  // range 3 → 0.2 → f16 0x3266 = 0.199951171875; zero = round(5.0012) = 5
  assert.equal([...e.scales], [0x3266])
  assert.equal([...e.zeros], [5])
  // q = round(x / s) + 5: -1 → 0, 0 → 5, 0.5 → round(2.5006) + 5 = 8, 2 → round(10.0024) + 5 = 15
  assert.equal([...e.qweight], [0x50, 0xf8])
  const s = 0.199951171875
  assert.equal([...dequantizeInt4(e)], [-5 * s, 0, 3 * s, 10 * s])
})

test('the range always holds 0: an all-positive group has zero point 0', () => {
  const e = quantizeInt4(Float32Array.from([1, 2, 3, 4]), 1, 4, 4)
  assert.is(e.zeros[0], 0)
  const y = dequantizeInt4(e)
  for (let i = 0; i < 4; i++) assert.ok(Math.abs(y[i]! - (i + 1)) <= 4 / 15 / 2 + 1e-3)
})

test('an all-zero group has scale 0, zero 0, codes 0 and decodes to zeros', () => {
  const e = quantizeInt4(new Float32Array(8), 2, 4, 4)
  assert.ok(e.scales.every((s) => s === 0) && e.zeros.every((z) => z === 0) && e.qweight.every((q) => q === 0))
  assert.ok(dequantizeInt4(e).every((v) => v === 0))
})

test('a group containing NaN is refused, naming the element', () => {
  const x = new Float32Array(16)
  x[9] = Number.NaN
  assert.throws(() => quantizeInt4(x, 2, 8, 4), (e: unknown) => e instanceof InputError && e.code === 'QUANT_NOT_FINITE' && /element 9 is NaN/.test(e.message))
  x[9] = -Infinity
  assert.throws(() => quantizeInt4(x, 2, 8, 4), (e: unknown) => e instanceof InputError && /element 9 is -Infinity/.test(e.message))
})

test('one huge outlier: the group scale follows it, the small values round to 0', () => {
  const y = dequantizeInt4(quantizeInt4(Float32Array.from([1000, 0.01, -0.01, 0.02]), 1, 4, 4))
  // scale f16(1000.01/15) = 66.6875, zero 0; 1000 → q 15 → 1000.3125
  assert.equal([...y], [1000.3125, 0, 0, 0])
})

test('preconditions as sentences', () => {
  assert.is(int4RowProblem(100, 128), 'row size (100) is not a multiple of the int4 group size (128)')
  assert.is(int4RowProblem(128, 3), 'group size (3) must be an even integer of at least 2')
  assert.throws(() => quantizeInt4(new Float32Array(100), 1, 100, 128), /row size \(100\)/)
})

test('round trip within half a step per group on random rows, decoding any row range', () => {
  const rows = 6
  const cols = 256
  const x = new Rng(5, 'int4').fillNormal(new Float32Array(rows * cols))
  const e = quantizeInt4(x, rows, cols, 128)
  const y = dequantizeInt4(e)
  for (let g = 0; g < (rows * cols) / 128; g++) {
    const s = e.scales[g]!
    assert.ok(s > 0)
    let lo = 0
    let hi = 0
    for (let j = 0; j < 128; j++) {
      lo = Math.min(lo, x[g * 128 + j]!)
      hi = Math.max(hi, x[g * 128 + j]!)
    }
    const step = (hi - lo) / 15
    for (let j = 0; j < 128; j++) assert.ok(Math.abs(x[g * 128 + j]! - y[g * 128 + j]!) <= step * 0.51 + 1e-3 * step)
  }
  assert.equal(dequantizeInt4(e, 2, 3), y.subarray(2 * cols, 5 * cols))
})

test.run()
