/**
 * The variant table and the in-memory builds: `KIND[:SCHEME]` parsing, the
 * weights a quantized variant encodes (lora quantize's rule, tensors the
 * scheme cannot hold kept in float), rounding to 16 bits, and the reference
 * rows kept in memory or spilled to a temporary file.
 */
import {existsSync} from 'node:fs'
import {dirname} from 'node:path'
import {suite} from 'uvu'
import * as assert from 'uvu/assert'
import {rejection} from '../../helpers/index.js'
import {fromFloat, toFloat32} from '../../../src/core/dtype.js'
import {ReferenceRows} from '../../../src/core/eval/reference-rows.js'
import {emptyQuantStats, quantizedWeights, roundedWeights} from '../../../src/core/eval/variant-weights.js'
import {DEFAULT_VARIANTS, VARIANT_KINDS, parseVariant, parseVariantList, variantKind, variantName, variantNames} from '../../../src/core/eval/variants/registry.js'
import {QUANT_SCHEME_NAMES, roundTrip} from '../../../src/core/quant/schemes.js'
import {Rng} from '../../../src/core/random.js'
import type {DecoderWeights} from '../../../src/core/runtime/decoder-weights.js'
import {floatLinear, linearValues} from '../../../src/core/runtime/linear-weight.js'

const test = suite('eval/variants')

test('every kind of the issue is in the table; the defaults parse', () => {
  assert.equal(
    VARIANT_KINDS.map((k) => k.name),
    ['base', 'merged', 'merge-then-quantize', 'quantized-base-unmerged', 'requantize', 'file'],
  )
  for (const kind of ['merge-then-quantize', 'quantized-base-unmerged', 'requantize']) assert.equal(variantKind(kind).schemes, QUANT_SCHEME_NAMES) // nf4, q4_0, int4 (and every scheme registered)
  assert.equal(variantKind('merged').schemes, ['f16', 'bf16'])
  assert.equal(DEFAULT_VARIANTS.map(parseVariant).map(variantName), [...DEFAULT_VARIANTS])
  assert.ok(variantNames().includes('requantize:int4') && !variantNames().some((n) => n.startsWith('file')))
  assert.is(variantKind('base').gated, false)
})

test('KIND[:SCHEME] lists: duplicates dropped, bad names are one usage error listing the choices', async () => {
  assert.equal(parseVariantList(' base , merged:bf16,base'), [{kind: 'base', scheme: null}, {kind: 'merged', scheme: 'bf16'}])
  for (const bad of ['merged', 'merged:f32', 'base:f16', 'quantize:q4_0', 'requantize:q4_0:x', 'file:x.gguf', ' , ']) {
    const err = await rejection(Promise.resolve().then(() => parseVariantList(bad)))
    assert.is(err.code, 'EVAL_BAD_VARIANT', bad)
    assert.is(err.exitCode, 2)
  }
  assert.match((await rejection(Promise.resolve().then(() => parseVariant('merged')))).message, /merged:f16, merged:bf16/)
})

test('a variant file is reported by its name; two builds of the same model share a key', () => {
  assert.is(variantName({kind: 'file', scheme: '/tmp/x/merged-nf4/'}), 'file:merged-nf4')
  const keys = ['merge-then-quantize', 'quantized-base-unmerged', 'requantize'].map((k) => variantKind(k).modelKey('nf4', false))
  assert.equal(new Set(keys).size, 1) // without the adapters all three are the quantized base
  assert.is(variantKind('base').modelKey(null, true), variantKind('base').modelKey(null, false))
})

/** A tiny in-memory weights source (only what the transforms read). */
function weightsOf(tensors: Record<string, {out: number; in: number; values: Float32Array}>, vectors: Record<string, Float32Array> = {}): DecoderWeights {
  return {
    path: 'memory',
    format: 'safetensors',
    config: {} as DecoderWeights['config'],
    names: new Set([...Object.keys(tensors), ...Object.keys(vectors)]),
    vector: async (name) => vectors[name]!,
    linear: async (name) => floatLinear(tensors[name]!.values, tensors[name]!.out, tensors[name]!.in),
    close: async () => {},
  }
}

test('quantized variants encode what lora quantize encodes; q4_0 runs as MatMulNBits blocks, rows it cannot hold stay float', async () => {
  const rng = new Rng(3, 'eval-weights')
  const t = (out: number, inDim: number) => ({out, in: inDim, values: rng.fillNormal(new Float32Array(out * inDim))})
  const src = weightsOf({
    'model.layers.0.self_attn.q_proj.weight': t(8, 64),
    'model.layers.0.mlp.down_proj.weight': t(64, 172),
    'model.embed_tokens.weight': t(16, 64),
  })
  const q4 = emptyQuantStats()
  const w = quantizedWeights(src, {scheme: 'q4_0', blockSize: 32, doubleQuant: false}, q4)
  const q = await w.linear('model.layers.0.self_attn.q_proj.weight')
  assert.is(q.kind, 'nbits')
  const original = (await src.linear('model.layers.0.self_attn.q_proj.weight')) as {values: Float32Array}
  assert.equal([...linearValues(q)], [...roundTrip({scheme: 'q4_0', blockSize: 32, doubleQuant: false}, [8, 64], original.values)])
  assert.is((await w.linear('model.layers.0.mlp.down_proj.weight')).kind, 'float')
  assert.is((await w.linear('model.embed_tokens.weight')).kind, 'float') // embeddings are not quantized by default
  assert.equal([q4.quantized, q4.kept.map((k) => k.name)], [1, ['model.layers.0.mlp.down_proj.weight']])
  assert.match(q4.kept[0]!.reason, /row size \(172\) is not a multiple of Q4_0 block size \(32\)/)

  const q8 = await quantizedWeights(src, {scheme: 'q8_0', blockSize: 32, doubleQuant: false}).linear('model.layers.0.self_attn.q_proj.weight')
  assert.equal([q8.kind, q8.kind === 'nbits' && q8.bits], ['nbits', 8]) // Q8_0 runs natively too
  assert.equal([...linearValues(q8)], [...roundTrip({scheme: 'q8_0', blockSize: 32, doubleQuant: false}, [8, 64], original.values)])

  const nf4 = emptyQuantStats()
  const n = quantizedWeights(src, {scheme: 'nf4', blockSize: 64, doubleQuant: false}, nf4)
  const down = await n.linear('model.layers.0.mlp.down_proj.weight')
  assert.is(down.kind, 'float') // nf4 blocks run over the flattened tensor: decoded to float32
  const downValues = (await src.linear('model.layers.0.mlp.down_proj.weight')) as {values: Float32Array}
  assert.equal([...linearValues(down)], [...roundTrip({scheme: 'nf4', blockSize: 64, doubleQuant: false}, [64, 172], downValues.values)])
  assert.equal([nf4.quantized, nf4.kept.length], [1, 0])
})

test('rounded variants hold every tensor, vectors too, rounded to the 16-bit dtype', async () => {
  const values = Float32Array.of(1 / 3, 1e-5, 65519, -2.5)
  const src = weightsOf({'model.layers.0.mlp.up_proj.weight': {out: 1, in: 4, values}}, {'model.norm.weight': values})
  for (const [dtype, name] of [['f16', 'F16'], ['bf16', 'BF16']] as const) {
    const w = roundedWeights(src, dtype)
    const expected = [...toFloat32(name, fromFloat(name, values))]
    assert.equal([...linearValues(await w.linear('model.layers.0.mlp.up_proj.weight'))], expected)
    assert.equal([...(await w.vector('model.norm.weight'))], expected)
    assert.not.equal(expected, [...values])
  }
})

test('reference rows: held in memory, or past the budget written to a temporary file and read back equal', async () => {
  const rows = new ReferenceRows(64)
  const a = Float32Array.from({length: 12}, (_, i) => i / 7)
  const b = Float32Array.from({length: 20}, (_, i) => -i / 3)
  const c = Float32Array.from({length: 5}, (_, i) => i * 1e-3)
  await rows.put(0, a)
  await rows.put(1, b)
  await rows.put(2, c)
  assert.is(rows.spilledBytes, (20 + 5) * 4)
  assert.equal([...(await rows.get(2))], [...c])
  assert.equal([...(await rows.get(1))], [...b])
  assert.is(await rows.get(0), a)
  const file = (rows as unknown as {file: {dir: string}}).file.dir
  assert.ok(existsSync(file))
  await rows.close()
  assert.not.ok(existsSync(file), `${dirname(file)} still holds the spill folder`)
})

test.run()
