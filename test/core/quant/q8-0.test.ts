import {suite} from 'uvu'
import * as assert from 'uvu/assert'
import {Q8_0_BYTES_PER_BLOCK, dequantizeQ8_0, q8_0RowProblem, quantizeQ8_0} from '../../../src/core/quant/q8-0.js'
import {Rng} from '../../../src/core/random.js'
import {decodeQ8_0} from '../../helpers/gguf-reference.js'

const test = suite('quant/q8-0')

test('a hand-worked block: d = amax / 127 as f16, q = round(x / d) half away from zero', () => {
  // x = j − 16 for j = 0…31: amax 16, d = 16/127 = 0.12598 (f16 0x3008 = 0.1259765625)
  const x = Float32Array.from({length: 32}, (_, j) => j - 16)
  const bytes = quantizeQ8_0(x)
  assert.is(bytes.length, Q8_0_BYTES_PER_BLOCK)
  assert.is(bytes[0]! | (bytes[1]! << 8), 0x3008)
  const q = Array.from(new Int8Array(bytes.buffer, 2, 32))
  assert.equal(q, Array.from(x, (v) => Math.sign(v) * Math.floor(Math.abs(v * (127 / 16)) + 0.5)))
  assert.is(q[0], -127)
  assert.is(q[8], -64) // −8 · 127/16 = −63.5 → −64 (away from zero)
  assert.equal([...dequantizeQ8_0(bytes)], decodeQ8_0(Buffer.from(bytes), 32))
})

test('round trip within half a step (plus the f16 rounding of d) of each block; the independent decoder agrees; preconditions as sentences', () => {
  const x = new Rng(5, 'q8').fillNormal(new Float32Array(32 * 40), 0.3)
  const bytes = quantizeQ8_0(x)
  const y = dequantizeQ8_0(bytes)
  assert.equal([...y], decodeQ8_0(Buffer.from(bytes), x.length))
  for (let b = 0; b < 40; b++) {
    let amax = 0
    for (let j = 0; j < 32; j++) amax = Math.max(amax, Math.abs(x[b * 32 + j]!))
    // |q| ≤ 127 steps of a d rounded to f16 (relative error ≤ 2⁻¹¹)
    const bound = (amax / 127) * (0.5 + 127 / 2048) + 1e-7
    for (let j = 0; j < 32; j++) assert.ok(Math.abs(y[b * 32 + j]! - x[b * 32 + j]!) <= bound)
  }
  assert.is(q8_0RowProblem(64), undefined)
  assert.is(q8_0RowProblem(8), 'row size (8) is not a multiple of Q8_0 block size (32)')
  assert.throws(() => quantizeQ8_0(Float32Array.from({length: 32}, (_, j) => (j === 3 ? NaN : 1))), /element 3 is NaN/)
})

test.run()
