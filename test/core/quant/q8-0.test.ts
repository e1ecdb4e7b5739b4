import {readFileSync} from 'node:fs'
import {join} from 'node:path'
import {suite} from 'uvu'
import * as assert from 'uvu/assert'
import {InputError} from '../../../src/core/errors.js'
import {ModelReader} from '../../../src/core/model-io/model-reader.js'
import {quantizeModel} from '../../../src/core/model-io/quantize-model.js'
import {Q8_0Encoder, dequantizeQ8_0, q8_0RowProblem, quantizeQ8_0} from '../../../src/core/quant/q8-0.js'
import {QUANT_SCHEMES, roundTrip} from '../../../src/core/quant/schemes.js'
import {Rng} from '../../../src/core/random.js'
import {parseGguf} from '../../helpers/gguf-reference.js'
import {REPO_ROOT, tempDir} from '../../helpers/index.js'
import {synthesizeBase} from '../../../src/core/synth/base.js'

const test = suite('quant/q8-0')

/** Q8_0 decoding written from ggml's block layout (f16 d, then 32 int8), sharing no code with src/. */
function decodeQ8_0Reference(bytes: Buffer, count: number): number[] {
  const f16 = (h: number) => {
    const e = (h >> 10) & 31
    const m = h & 1023
    const v = e === 0 ? m * 2 ** -24 : (1 + m / 1024) * 2 ** (e - 15)
    return h & 0x8000 ? -v : v
  }
  const out: number[] = []
  for (let b = 0; b < count / 32; b++) {
    const d = f16(bytes.readUInt16LE(b * 34))
    for (let j = 0; j < 32; j++) out.push(Math.fround(bytes.readInt8(b * 34 + 2 + j) * d))
  }
  return out
}

test('hand-worked block: d = amax/127 as f16, q = roundf(x · (1/d)) with halves away from zero, 32 int8 after d', () => {
  const x = new Float32Array(32)
  for (let j = 0; j < 32; j++) x[j] = j - 16 // -16 … 15: amax = 16
  const b = quantizeQ8_0(x)
  assert.is(b.length, 34)
  // d = 16/127 = 0.125984… → f16 0x3008 = 2^-3 · (1 + 8/1024) = 0.1259765625; 1/d in float32 = 7.9375 (= 127/16)
  assert.equal([b[0], b[1]], [0x08, 0x30])
  const q = new Int8Array(b.buffer, 2, 32)
  assert.is(q[0], -127) // -16 · 7.9375
  assert.is(q[8], -64) // -8 · 7.9375 = -63.5: away from zero (Math.round would give -63)
  assert.is(q[16], 0)
  assert.is(q[24], 64) // 8 · 7.9375 = 63.5
  assert.is(q[25], 71) // 9 · 7.9375 = 71.4375
  assert.is(q[31], 119) // 15 · 7.9375 = 119.0625
  const y = dequantizeQ8_0(b)
  assert.is(y[0], -127 * 0.1259765625)
  assert.is(y[8], -64 * 0.1259765625)
  assert.is(y[16], 0)
  assert.is(y[31], Math.fround(119 * 0.1259765625))
})

test('the worked example in docs/formats.md is byte-exact', () => {
  const doc = readFileSync(join(REPO_ROOT, 'docs/formats.md'), 'utf8')
  const section = doc.slice(doc.indexOf('## GGUF q8_0'), doc.indexOf('## lora-pack-shared-b'))
  const block = section.slice(section.indexOf('```\n') + 4, section.indexOf('\n```', section.indexOf('```\n') + 4))
  const bytes = block.split('\n').flatMap((line) => line.slice(0, 47).trim().split(/\s+/).map((h) => parseInt(h, 16)))
  const x = new Float32Array(32)
  for (let j = 0; j < 32; j++) x[j] = j - 16
  assert.equal(bytes, [...quantizeQ8_0(x)])
})

test('amax 127 gives d = 1 exactly: codes are the rounded values, ties away from zero on both sides', () => {
  const x = new Float32Array(32)
  x.set([127, 2.5, -2.5, -0.5, 0.5, -127, 1.25, -1.5])
  const b = quantizeQ8_0(x)
  assert.equal([b[0], b[1]], [0x00, 0x3c]) // f16 1.0
  assert.equal([...new Int8Array(b.buffer, 2, 8)], [127, 3, -3, -1, 1, -127, 1, -2])
  assert.equal([...dequantizeQ8_0(b).subarray(0, 8)], [127, 3, -3, -1, 1, -127, 1, -2])
})

test('an all-zero block stores d = 0 and codes 0 and decodes to zeros', () => {
  const b = quantizeQ8_0(new Float32Array(64))
  assert.equal([...b], new Array(68).fill(0))
  assert.ok(dequantizeQ8_0(b).every((v) => v === 0))
})

test('NaN or infinity is refused, naming the element; a scale past f16 is refused', () => {
  const x = new Float32Array(64)
  x[40] = Number.NaN
  assert.throws(() => quantizeQ8_0(x), (e: unknown) => e instanceof InputError && e.code === 'QUANT_NOT_FINITE' && /element 40 is NaN: 8-bit/.test(e.message))
  const big = new Float32Array(32)
  big[3] = -1e7 // d = 1e7/127 > 65504
  assert.throws(() => quantizeQ8_0(big), (e: unknown) => e instanceof InputError && e.code === 'QUANT_SCALE_OVERFLOW')
})

test('preconditions as sentences, through the scheme table', () => {
  assert.is(q8_0RowProblem(48), 'row size (48) is not a multiple of Q8_0 block size (32)')
  assert.is(q8_0RowProblem(64), undefined)
  const scheme = QUANT_SCHEMES.q8_0
  assert.is(scheme.blockSizeProblem(64), 'Q8_0 blocks are always 32 elements (got 64)')
  assert.is(scheme.shapeProblem([4, 40], 32), 'row size (40) is not a multiple of Q8_0 block size (32)')
  assert.is(scheme.shapeProblem([64], 32), 'tensor is 1-D [64]; only 2-D weights are quantized')
  assert.is(scheme.bytesPerBlock(32), 34)
})

test('random rows: the error of every element is within the float64 bound d/2 + amax · 2^-11; streaming equals one push; the table round trip equals the codec', () => {
  const rows = 40
  const x = new Rng(8, 'q8').fillNormal(new Float32Array(rows * 64))
  const whole = quantizeQ8_0(x)
  const enc = new Q8_0Encoder(x.length)
  enc.push(x.subarray(0, 3 * 64))
  enc.push(x.subarray(3 * 64))
  assert.equal(enc.finish(), whole)
  const y = dequantizeQ8_0(whole)
  assert.equal(roundTrip({scheme: 'q8_0', blockSize: 32, doubleQuant: false}, [rows, 64], x), y)
  let worst = 0
  for (let b = 0; b < x.length / 32; b++) {
    let amax = 0
    for (let j = 0; j < 32; j++) amax = Math.max(amax, Math.abs(x[b * 32 + j]!))
    // rounding to the nearest code: d/2; the f16 rounding of d moves a code of at most 127 by 127 · d · 2^-11 = amax · 2^-11
    const bound = (amax / 127 / 2) * (1 + 2 ** -20) + amax * 2 ** -11
    for (let j = 0; j < 32; j++) {
      const e = Math.abs(x[b * 32 + j]! - y[b * 32 + j]!)
      worst = Math.max(worst, e / amax)
      assert.ok(e <= bound, `block ${b} element ${j}: error ${e} > bound ${bound}`)
    }
  }
  assert.ok(worst > 1 / 400, `the bound is approached (worst relative error ${worst})`)
})

test('lora quantize --scheme q8_0 writes GGUF type Q8_0 (file_type 7) that an independent decoder reads as the model reader does', async () => {
  const dir = tempDir()
  try {
    // a Llama-shaped base with its tokenizer (GGUF models carry llama.cpp's metadata); MLP rows of 40 are not whole blocks
    await synthesizeBase({out: join(dir.path, 'base'), hidden: 64, intermediate: 40, layers: 1, vocab: 400, dtype: 'F16', seed: 8})
    const out = join(dir.path, 'm.gguf')
    const r = await quantizeModel({model: join(dir.path, 'base'), out, scheme: 'q8_0'})
    assert.equal([r.format, r.block_size, r.quantized], ['gguf', 32, 6])
    assert.equal(r.kept, [{name: 'model.layers.0.mlp.down_proj.weight', reason: 'row size (40) is not a multiple of Q8_0 block size (32)'}])
    const buf = readFileSync(out)
    const g = parseGguf(buf)
    assert.is(g.kv.get('general.file_type')!.value, 7)
    const up = g.tensors.find((t) => t.name === 'blk.0.ffn_up.weight')!
    assert.equal([up.ne.map(Number), up.type], [[64, 40], 8])
    const start = g.dataStart + Number(up.offset)
    const decoded = decodeQ8_0Reference(buf.subarray(start, start + 40 * 2 * 34), 40 * 64)
    const reader = await ModelReader.open(out)
    const base = await ModelReader.open(join(dir.path, 'base'))
    try {
      assert.equal(reader.get(up.name).encoding, 'q8_0')
      assert.equal([...(await reader.readRows(up.name, 0, 40))], decoded)
      const original = await base.readRows('model.layers.0.mlp.up_proj.weight', 0, 40)
      let amax = 0
      for (const v of original) amax = Math.max(amax, Math.abs(v))
      // half a step of d = amax/127 plus the f16 rounding of d
      for (let i = 0; i < decoded.length; i++) assert.ok(Math.abs(decoded[i]! - original[i]!) <= amax / 254 + amax / 2048)
    } finally {
      await reader.close()
      await base.close()
    }
  } finally {
    dir.cleanup()
  }
})

test.run()
