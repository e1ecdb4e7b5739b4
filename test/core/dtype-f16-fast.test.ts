import {suite} from 'uvu'
import * as assert from 'uvu/assert'
import {f16BitsToNumber, f32BitsToF16Bits, fromFloat, toFloat32} from '../../src/core/dtype.js'
import {Rng} from '../../src/core/random.js'

const test = suite('dtype f16 bulk conversion')

test('toFloat32(F16) decodes every one of the 65,536 bit patterns exactly (NaN stays NaN)', () => {
  const all = new Uint16Array(65536)
  for (let h = 0; h < 65536; h++) all[h] = h
  const out = toFloat32('F16', new Uint8Array(all.buffer))
  for (let h = 0; h < 65536; h++) {
    const ref = f16BitsToNumber(h)
    if (Number.isNaN(ref)) assert.ok(Number.isNaN(out[h]!), `0x${h.toString(16)}`)
    else assert.ok(Object.is(out[h], ref), `0x${h.toString(16)}: ${out[h]} vs ${ref}`)
  }
})

test('fromFloat(F16) agrees with the scalar round-to-nearest-even converter on random and edge bit patterns', () => {
  const rng = new Rng(9, 'f16')
  const n = 1 << 20
  const bits = new Uint32Array(n)
  for (let i = 0; i < n; i++) bits[i] = rng.nextUint32()
  // around every f16 boundary: normal min, max, overflow, ties
  const edges = [0x38800000, 0x387fffff, 0x477fe000, 0x477fefff, 0x477ff000, 0x477ff001, 0x3f801000, 0x3f803000, 0x3f800fff, 0x7f800000, 0x7fc00000, 0, 0x80000000]
  for (const [i, e] of edges.entries()) {
    bits[i] = e
    bits[edges.length + i] = (e | 0x80000000) >>> 0
  }
  for (let i = 0; i < 4096; i++) bits[100 + i] = (0x38000000 + i * 0x10001) >>> 0
  const out = new Uint16Array(fromFloat('F16', new Float32Array(bits.buffer)).slice().buffer)
  for (let i = 0; i < n; i++) assert.is(out[i], f32BitsToF16Bits(bits[i]!), `0x${bits[i]!.toString(16)}`)
})

test.run()
