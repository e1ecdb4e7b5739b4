import {suite} from 'uvu'
import * as assert from 'uvu/assert'
import {f16ToF32Table} from '../../../src/core/dtype.js'
import {InputError} from '../../../src/core/errors.js'
import {quantizeQ4_0Blocks, quantizeQ4_0BlocksF16, quantizeQ4_0BlocksF16Js, quantizeQ4_0BlocksJs} from '../../../src/core/quant/q4-0.js'
import {q4_0SimdKernelF16, q4_0SimdKernelF32} from '../../../src/core/quant/q4-0-simd.js'
import {quantizeQ8_0Blocks, quantizeQ8_0BlocksF16} from '../../../src/core/quant/q8-0.js'
import {Rng} from '../../../src/core/random.js'
import {skipIf} from '../../helpers/skip.js'

const test = suite('quant: binary16 kernels (q4_0, q8_0)')

const KERNELS = [
  {name: 'q4_0', bytes: 18, f32: quantizeQ4_0BlocksJs, f16: quantizeQ4_0BlocksF16},
  {name: 'q4_0 (JavaScript)', bytes: 18, f32: quantizeQ4_0BlocksJs, f16: quantizeQ4_0BlocksF16Js},
  {name: 'q4_0 from float32 (SIMD where there is one)', bytes: 18, f32: quantizeQ4_0BlocksJs, f16: (bits: Uint16Array, from: number, count: number, out: Uint8Array, outOffset: number, firstIndex: number) => quantizeQ4_0Blocks(decode(bits.subarray(from, from + count)), out, outOffset, firstIndex)},
  {name: 'q8_0', bytes: 34, f32: quantizeQ8_0Blocks, f16: quantizeQ8_0BlocksF16},
]

/** Blocks chosen where the binary16 shortcut could go wrong, then random ones. */
function trickyBlocks(): Uint16Array {
  const blocks: number[][] = []
  const block = (f: (j: number) => number) => blocks.push(Array.from({length: 32}, (_, j) => f(j)))
  block(() => 0) // all +0
  block((j) => (j % 2 ? 0x8000 : 0)) // ±0 mixed: max stays +0
  block((j) => (j === 3 ? 0x3c00 : j === 9 ? 0xbc00 : 0x1000)) // +1 then -1: the first wins
  block((j) => (j === 3 ? 0xbc00 : j === 9 ? 0x3c00 : 0x9000)) // -1 then +1
  block((j) => 0x0001 + j) // subnormals only
  block((j) => (j === 31 ? 0xfbff : 0x3555)) // -65504 last
  block((j) => 0x8000 | (0x3c00 + j * 7)) // all negative, growing
  block((j) => (j < 16 ? 0x4000 : 0xc000)) // ±2, ties everywhere
  const rng = new Rng(9, 'f16 kernels')
  for (let b = 0; b < 64; b++) block(() => (rng.int(0x7c00) | (rng.int(2) << 15)) >>> 0)
  return Uint16Array.from(blocks.flat())
}

function decode(bits: Uint16Array): Float32Array {
  const t = f16ToF32Table()
  return Float32Array.from(bits, (h) => t[h]!)
}

for (const k of KERNELS) {
  test(`${k.name}: binary16 bits in, the bytes of the float32 kernel out (ties, zeros, subnormals, extremes, random)`, () => {
    const bits = trickyBlocks()
    const n = bits.length
    const want = new Uint8Array((n / 32) * k.bytes)
    k.f32(decode(bits), want, 0, 0)
    const got = new Uint8Array(want.length + 5)
    // an offset into the bits and into the output, as rows of a chunk are
    const padded = new Uint16Array(n + 64)
    padded.set(bits, 64)
    k.f16(padded, 64, n, got, 5, 0)
    assert.equal(got.subarray(5), want)
  })

  test(`${k.name}: NaN and ±Infinity give the float32 kernel's error, naming the first in the block`, () => {
    for (const bad of [0x7e00, 0x7c00, 0xfc00, 0xfd01]) {
      const bits = trickyBlocks().subarray(0, 96).slice()
      bits[32 + 20] = 0x3c00
      bits[32 + 11] = bad
      bits[32 + 25] = 0x7e00
      const message = (f: () => void) => {
        try {
          f()
        } catch (error) {
          assert.instance(error, InputError)
          return `${(error as InputError).code}: ${(error as Error).message}`
        }
        throw new Error('expected an error')
      }
      const want = message(() => k.f32(decode(bits), new Uint8Array(3 * k.bytes), 0, 1000))
      assert.match(want, /element 1043 is (NaN|-?Infinity)/)
      assert.is(message(() => k.f16(bits, 0, 96, new Uint8Array(3 * k.bytes), 0, 1000)), want)
    }
  })
}

const simd = q4_0SimdKernelF16()
const simd32 = q4_0SimdKernelF32()

/** The index of the first byte that differs, or −1 (large arrays: uvu's diff of them would take minutes). */
function firstDifference(a: Uint8Array, b: Uint8Array): number {
  if (a.length !== b.length) return Math.min(a.length, b.length)
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return i
  return -1
}

skipIf(test, simd ? undefined : 'this Node has no WebAssembly SIMD: the JavaScript kernel runs instead')(
  'q4_0 SIMD kernel: every binary16 value, in blocks of every magnitude, over more than one batch: the JavaScript kernel\'s bytes',
  () => {
    // all 63,488 finite values (both signs), shuffled into blocks, then blocks scaled down so the largest is small or subnormal
    const rng = new Rng(2, 'simd')
    const finite = Array.from({length: 65536}, (_, h) => h).filter((h) => (h & 0x7c00) !== 0x7c00)
    for (let i = finite.length - 1; i > 0; i--) {
      const j = rng.int(i + 1)
      ;[finite[i], finite[j]] = [finite[j]!, finite[i]!]
    }
    const small = finite.map((h) => h & 0x83ff)
    const all = [...finite, ...small, ...trickyBlocks(), ...[...finite].reverse()]
    const bits = Uint16Array.from(all.slice(0, Math.floor(all.length / 32) * 32))
    assert.ok(bits.length / 32 > 4100)
    const want = new Uint8Array((bits.length / 32) * 18)
    quantizeQ4_0BlocksF16Js(bits, 0, bits.length, want, 0, 0)
    const got = new Uint8Array(want.length)
    assert.is(simd!(bits, 0, bits.length, got, 0), -1)
    assert.is(firstDifference(got, want), -1, 'the first byte that differs')
    // a NaN in the block after the first batch of 4,096: refused there, and the blocks before it written
    bits[4100 * 32 + 7] = 0x7e01
    const part = new Uint8Array(want.length)
    assert.is(simd!(bits, 0, bits.length, part, 0), 4100)
    assert.is(firstDifference(part.subarray(0, 4100 * 18), want.subarray(0, 4100 * 18)), -1)
  },
)

/** Float32 values where the float32 kernel could go wrong: ties, zeros, subnormals, huge and tiny blocks, random. */
function trickyFloats(): Float32Array {
  const rng = new Rng(4, 'f32 kernel')
  const blocks: number[][] = []
  const block = (f: (j: number) => number) => blocks.push(Array.from({length: 32}, (_, j) => f(j)))
  block(() => 0)
  block((j) => (j % 2 ? -0 : 0))
  block((j) => (j === 5 ? 3 : j === 20 ? -3 : 0.5)) // +3 then -3: the first wins
  block((j) => (j === 5 ? -3 : j === 20 ? 3 : -0.5))
  block((j) => (j + 1) * 1e-45) // float32 subnormals
  block((j) => (j === 0 ? 65504 * 8 : j)) // the largest scale f16 holds
  block((j) => (j === 31 ? -1e-30 : 1e-31 * j))
  for (let b = 0; b < 4300; b++) {
    const scale = 2 ** (rng.int(50) - 40)
    block(() => rng.normal() * scale)
  }
  return Float32Array.from(blocks.flat())
}

skipIf(test, simd32 ? undefined : 'this Node has no WebAssembly SIMD: the JavaScript kernel runs instead')(
  'q4_0 SIMD kernel from float32: ties, zeros, subnormals, the largest scale, random magnitudes over more than one batch: the JavaScript kernel\'s bytes; refusals where JavaScript raises',
  () => {
    const values = trickyFloats()
    const want = new Uint8Array((values.length / 32) * 18)
    quantizeQ4_0BlocksJs(values, want, 0, 0)
    const got = new Uint8Array(want.length)
    assert.is(simd32!(values, 0, values.length, got, 0), -1)
    assert.is(firstDifference(got, want), -1, 'the first byte that differs')
    // past the largest scale f16 holds, and NaN, after the first batch of 4,096 blocks
    for (const [bad, block] of [[65504 * 8 * 1.0001, 4200], [Number.NaN, 4100], [-Infinity, 4150]] as const) {
      const v = values.slice()
      v[block * 32 + 9] = bad
      const part = new Uint8Array(want.length)
      assert.is(simd32!(v, 0, v.length, part, 0), block, `${bad}`)
      assert.is(firstDifference(part.subarray(0, block * 18), want.subarray(0, block * 18)), -1)
      // the scale is named by its block's first element, a value by its own
      const named = Number.isFinite(bad) ? `block at element ${block * 32} ` : `element ${block * 32 + 9} is ${bad}`
      assert.throws(() => quantizeQ4_0Blocks(v, new Uint8Array(want.length), 0, 0), (e: unknown) => e instanceof InputError && e.message.includes(named))
    }
  },
)

test.run()
