import {suite} from 'uvu'
import * as assert from 'uvu/assert'
import {InputError} from '../../../src/core/errors.js'
import {dynamicMap} from '../../../src/core/quant/dynamic-map.js'
import {NF4_CODE, Nf4Encoder, dequantizeNf4, quantizeNf4, storedAbsmax} from '../../../src/core/quant/nf4.js'
import {Rng} from '../../../src/core/random.js'

const test = suite('quant/nf4')

/** The code book as printed in bitsandbytes/functional.py get_4bit_type("nf4") and the QLoRA paper's appendix. */
const PUBLISHED = [
  -1.0, -0.6961928009986877, -0.5250730514526367, -0.39491748809814453, -0.28444138169288635, -0.18477343022823334, -0.09105003625154495, 0.0,
  0.07958029955625534, 0.16093020141124725, 0.24611230194568634, 0.33791524171829224, 0.44070982933044434, 0.5626170039176941, 0.7229568362236023, 1.0,
]

function decodeAll(e: ReturnType<typeof quantizeNf4>): Float32Array {
  return dequantizeNf4(e.packed, storedAbsmax(e), e.blockSize, 0, e.count)
}

test('the code book is exactly the published NF4 values: 16 float32 values from -1 to 1 with an exact 0', () => {
  assert.equal([...NF4_CODE], PUBLISHED)
  assert.is(NF4_CODE[7], 0)
  for (const v of NF4_CODE) assert.is(Math.fround(v), v, `${v} is a float32 value`)
  for (let i = 1; i < 16; i++) assert.ok(NF4_CODE[i]! > NF4_CODE[i - 1]!)
})

test('hand-computed block: nearest code after dividing by the absmax, first element in the high nibble', () => {
  const x = new Float32Array(64)
  x.set([2, -2, 1, 0.5])
  const e = quantizeNf4(x)
  assert.is(e.absmax[0], 2)
  // 2/2 = 1 → code 15; -1 → 0; 0.5 → 0.4407 (12, below the midpoint 0.5017); 0.25 → 0.2461 (10); 0 → 7
  assert.equal([...e.packed.subarray(0, 3)], [0xf0, 0xca, 0x77])
  assert.equal([...e.packed.subarray(3)], new Array(29).fill(0x77))
  const y = decodeAll(e)
  assert.equal([...y.subarray(0, 5)], [2, -2, Math.fround(2 * 0.44070982933044434), Math.fround(2 * 0.24611230194568634), 0])
})

test('a value exactly halfway between two codes takes the lower one (the kernel tests x > threshold)', () => {
  const mid = Math.fround((0.7229568362236023 + 1) / 2)
  const x = new Float32Array(64)
  x[0] = 1
  x[1] = mid
  x[2] = Math.fround(mid + 2 ** -24)
  const e = quantizeNf4(x)
  assert.is(e.packed[0]! & 0x0f, 14)
  assert.is(e.packed[1]! >> 4, 15)
})

test('an all-zero block has absmax 0 and decodes to zeros', () => {
  const e = quantizeNf4(new Float32Array(128))
  assert.equal([...e.absmax], [0, 0])
  assert.ok(e.packed.every((b) => b === 0x77))
  assert.ok(decodeAll(e).every((v) => v === 0))
})

test('a block containing NaN is refused, naming the element', () => {
  const x = new Float32Array(128).fill(0.5)
  x[70] = Number.NaN
  assert.throws(() => quantizeNf4(x), (e: unknown) => e instanceof InputError && e.code === 'QUANT_NOT_FINITE' && /element 70 is NaN/.test(e.message))
  x[70] = Infinity
  assert.throws(() => quantizeNf4(x), (e: unknown) => e instanceof InputError && /element 70 is Infinity/.test(e.message))
})

test('one huge outlier takes its block scale: the rest of its block rounds to 0, the next block is untouched', () => {
  const x = new Float32Array(128).fill(0.01)
  x[5] = 1000
  const y = decodeAll(quantizeNf4(x))
  assert.is(y[5], 1000)
  for (let i = 0; i < 64; i++) if (i !== 5) assert.is(y[i], 0)
  for (let i = 64; i < 128; i++) assert.is(y[i], Math.fround(0.01))
})

test('partial last block and an odd element count', () => {
  const x = new Float32Array(67)
  for (let i = 0; i < 67; i++) x[i] = i - 33
  const e = quantizeNf4(x)
  assert.is(e.absmax.length, 2)
  assert.is(e.absmax[1], 33)
  assert.is(e.packed.length, 34)
  assert.is(e.packed[33]! & 0x0f, 0, 'the unused low nibble is 0')
  assert.is(decodeAll(e)[66], 33)
})

test('round trip stays within half the widest code gap times the block absmax', () => {
  const x = new Rng(1, 'nf4').fillNormal(new Float32Array(64 * 50))
  const e = quantizeNf4(x)
  const y = decodeAll(e)
  let halfGap = 0
  for (let i = 1; i < 16; i++) halfGap = Math.max(halfGap, (PUBLISHED[i]! - PUBLISHED[i - 1]!) / 2)
  for (let i = 0; i < x.length; i++) assert.ok(Math.abs(x[i]! - y[i]!) <= e.absmax[Math.floor(i / 64)]! * halfGap * (1 + 1e-6))
})

test('decoding any element range (odd starts included) equals the slice of a full decode', () => {
  const x = new Rng(5, 'nf4').fillNormal(new Float32Array(64 * 3 + 7))
  const e = quantizeNf4(x)
  const full = decodeAll(e)
  for (const [start, count] of [[0, 1], [1, 1], [1, 2], [63, 3], [65, 64], [130, 69], [193, 6]] as const) {
    assert.equal(dequantizeNf4(e.packed, e.absmax, 64, start, count), full.slice(start, start + count), `[${start}, ${start + count})`)
  }
})

test('pushing in block-aligned pieces gives the same bytes as one push', () => {
  const x = new Rng(2, 'nf4').fillNormal(new Float32Array(64 * 10 + 6))
  const whole = quantizeNf4(x, 64)
  const enc = new Nf4Encoder(x.length, 64)
  enc.push(x.subarray(0, 128))
  enc.push(x.subarray(128, 640))
  enc.push(x.subarray(640))
  const parts = enc.finish()
  assert.equal(parts.packed, whole.packed)
  assert.equal(parts.absmax, whole.absmax)
  assert.throws(() => new Nf4Encoder(100, 64).push(x.subarray(0, 50)), /block boundary/)
  assert.throws(() => new Nf4Encoder(100, 48), /not one bitsandbytes supports/)
})

test('dynamic map: 256 ascending float32 values, including 0 and 1, within [-1, 1]', () => {
  const m = dynamicMap()
  assert.is(m.length, 256)
  for (let i = 1; i < 256; i++) assert.ok(m[i]! > m[i - 1]!)
  assert.ok(m.includes(0))
  assert.is(m[255], 1)
  assert.ok(m[0]! > -1)
  // 10^(i-6) scales: the smallest positive value is 1e-6 · (0.1 + 1) / 2
  assert.ok(Math.abs(m[m.indexOf(0) + 1]! - 0.55e-6) < 1e-12)
})

test('double quantization: absmax minus its mean in 8 bits, decoded within the map resolution', () => {
  const x = new Rng(3, 'nf4').fillNormal(new Float32Array(64 * 600))
  const e = quantizeNf4(x, 64, true)
  const nested = e.nested!
  assert.is(nested.codes.length, 600)
  assert.is(nested.nestedAbsmax.length, 3)
  let mean = 0
  for (const a of e.absmax) mean += a
  mean /= e.absmax.length
  assert.ok(Math.abs(nested.offset - mean) < 1e-6)
  const decoded = storedAbsmax(e)
  for (let i = 0; i < 600; i++) {
    const scale = nested.nestedAbsmax[Math.floor(i / 256)]!
    assert.ok(Math.abs(decoded[i]! - e.absmax[i]!) <= scale * 0.05, `absmax ${i}`)
  }
})

test.run()
