/**
 * Block-quantized weights: GGML's Q4_0 and Q8_0 blocks re-packed for
 * onnxruntime's MatMulNBits (checked byte by byte on hand-made blocks), and
 * stories260K rewritten as Q4_0 / Q8_0 GGUFs, run natively, against the
 * float64 reference holding the same dequantized weights.
 */
import {readFileSync} from 'node:fs'
import {join} from 'node:path'
import {suite} from 'uvu'
import * as assert from 'uvu/assert'
import {decodeQ4_0} from '../../helpers/gguf-reference.js'
import {LlamaReference} from '../../helpers/llama-reference.js'
import {STORIES, decodeQ8_0, storiesMissing, relativeError, writeQuantizedGguf} from '../../helpers/decoder-fixtures.js'
import {rejection, skipIf, tempDir} from '../../helpers/index.js'
import {GgufFile} from '../../../src/core/formats/gguf-reader.js'
import {GGUF_ARCHITECTURES, hfTensorName, permuteRowsFromGguf, qkRole} from '../../../src/core/models/gguf-names.js'
import {dequantizeQ4_0, quantizeQ4_0} from '../../../src/core/quant/q4-0.js'
import {Rng} from '../../../src/core/random.js'
import {linearValues, q4_0ToNBits, q8_0ToNBits, reorderRows} from '../../../src/core/runtime/linear-weight.js'
import {loadDecoder, openDecoderWeights, readAdapters} from '../../../src/core/runtime/load-decoder.js'
import {DecoderModel} from '../../../src/core/runtime/decoder-model.js'
import {mapLinearWeights} from '../../../src/core/runtime/decoder-weights.js'
import {mergedWeights} from '../../../src/core/runtime/lora-deltas.js'

const unit = suite('runtime/linear-weight')

unit('a Q4_0 block re-packed: element 2j low and 2j+1 high in byte j, scale d, zero point 8', () => {
  // d = 1.0 (f16 0x3C00); GGML byte j holds element j (low) and element j + 16 (high)
  const block = new Uint8Array(18)
  block[0] = 0x00
  block[1] = 0x3c
  for (let j = 0; j < 16; j++) block[2 + j] = j | ((15 - j) << 4)
  const w = q4_0ToNBits(block, 1, 32)
  assert.is(w.bits, 4)
  assert.equal([...w.scales], [1])
  // elements: 0..15 → codes 0..15, 16..31 → codes 15..0
  assert.is(w.codes[0], 0x10) // elements 0, 1
  assert.is(w.codes[7], 0xfe) // elements 14, 15
  assert.is(w.codes[8], 0xef) // elements 16 (15), 17 (14)
  assert.is(w.codes[15], 0x01) // elements 30 (1), 31 (0)
  assert.equal([...linearValues(w)], [...Array.from({length: 16}, (_, j) => j - 8), ...Array.from({length: 16}, (_, j) => 7 - j)])
})

unit('Q4_0 re-packed decodes to exactly what the q4_0 decoder gives, for many rows', () => {
  const values = new Rng(1, 'q4').fillNormal(new Float32Array(6 * 96))
  const blocks = quantizeQ4_0(values)
  assert.equal([...linearValues(q4_0ToNBits(blocks, 6, 96))], [...dequantizeQ4_0(blocks)])
})

unit('a Q8_0 block: signed bytes become codes + 128, scale d', () => {
  const block = new Uint8Array(34)
  block[0] = 0x00
  block[1] = 0x38 // f16 0.5
  const q = new Int8Array(block.buffer, 2, 32)
  for (let j = 0; j < 32; j++) q[j] = j * 8 - 128
  const w = q8_0ToNBits(block, 1, 32)
  assert.is(w.bits, 8)
  assert.equal([...w.codes.subarray(0, 3)], [0, 8, 16])
  assert.equal([...linearValues(w)], Array.from({length: 32}, (_, j) => (j * 8 - 128) * 0.5))
})

unit('rows move as whole rows, quantized or not; bad byte counts are input errors', async () => {
  const values = new Rng(2, 'rows').fillNormal(new Float32Array(4 * 32))
  const w = q4_0ToNBits(quantizeQ4_0(values), 4, 32)
  const moved = linearValues(reorderRows(w, (r) => 3 - r))
  const plain = linearValues(w)
  for (let r = 0; r < 4; r++) assert.equal([...moved.subarray(r * 32, (r + 1) * 32)], [...plain.subarray((3 - r) * 32, (4 - r) * 32)])
  const err = await rejection(Promise.resolve().then(() => q4_0ToNBits(new Uint8Array(17), 1, 32)))
  assert.is(err.code, 'RUNTIME_BAD_BLOCKS')
  assert.is((await rejection(Promise.resolve().then(() => q8_0ToNBits(new Uint8Array(34), 1, 48)))).code, 'RUNTIME_BAD_BLOCKS')
})

unit.run()

const missing = storiesMissing()
const test = suite('runtime/quantized (stories260K GGUF)')
const real = skipIf(test, missing)
const tmp = tempDir('lora-runtime-quant-')
test.after(() => tmp.cleanup())
const IDS = [1, 403, 407, 261, 378, 432, 383, 286, 261, 315, 421, 395]

/** The reference with every quantized GGUF tensor's decoded values set in (q/k rows back in transformers' order). */
async function dequantizedReference(path: string, decode: (bytes: Uint8Array, count: number) => ArrayLike<number>): Promise<LlamaReference> {
  const ref = await LlamaReference.fromHfFolder(join(STORIES, 'hf'))
  const gguf = await GgufFile.open(path)
  try {
    const buf = readFileSync(path)
    for (const info of gguf.tensors.values()) {
      if (info.type.name === 'F32') continue
      const bytes = buf.subarray(gguf.dataStart + info.offset, gguf.dataStart + info.offset + info.byteLength)
      const count = info.shape[0]! * info.shape[1]!
      let values = Float64Array.from(decode(bytes, count))
      const hf = hfTensorName(GGUF_ARCHITECTURES.llama!, info.name)!
      const role = qkRole(hf)
      if (role) values = permuteRowsFromGguf(values, role === 'q' ? ref.config.heads : ref.config.kvHeads, info.shape[1]!)
      if (hf === 'lm_head.weight') continue // stories260K is tied: its output.weight holds the embedding's values (and blocks)
      ref.setWeight(hf, values)
    }
  } finally {
    await gguf.close()
  }
  return ref
}

for (const type of ['Q4_0', 'Q8_0'] as const) {
  real(`a ${type} GGUF runs through MatMulNBits and equals the reference with the dequantized weights`, async () => {
    const path = join(tmp.path, `stories-${type}.gguf`)
    const quantized = await writeQuantizedGguf(join(STORIES, 'gguf/stories260K.gguf'), path, type)
    assert.ok(quantized.includes('blk.0.attn_q.weight') && !quantized.includes('blk.0.ffn_down.weight')) // rows of 172 stay F32
    const loaded = await loadDecoder({base: path})
    try {
      assert.is(loaded.model.summary.nbitsWeights, quantized.length - 1) // the embedding table is decoded for its Gather
      const [logits] = await loaded.model.sequenceLogits([IDS])
      const ref = await dequantizedReference(path, type === 'Q4_0' ? (b, n) => decodeQ4_0(Buffer.from(b), n) : decodeQ8_0)
      const err = relativeError(logits!, ref.logits(IDS), 512)
      assert.ok(err < 1e-4, `relative error ${err}`)
      const float = await LlamaReference.fromHfFolder(join(STORIES, 'hf'))
      assert.ok(relativeError(logits!, float.logits(IDS), 512) > err, 'quantization changed the logits')
    } finally {
      await loaded.close()
    }
  })
}

real('projections quantized in memory (a merge-then-quantize variant) run through MatMulNBits and equal the reference', async () => {
  const base = await openDecoderWeights(join(STORIES, 'hf'))
  const ref = await LlamaReference.fromHfFolder(join(STORIES, 'hf'))
  await ref.mergeAdapter(join(STORIES, 'adapters/lora_small'))
  const adapters = await readAdapters([{path: join(STORIES, 'adapters/lora_small')}], base)
  const quantized = mapLinearWeights(mergedWeights(base, adapters), (name, w) => {
    if (!/\.(self_attn|mlp)\./.test(name) || w.in % 32 !== 0) return w
    const blocks = quantizeQ4_0(linearValues(w))
    ref.setWeight(name, Float64Array.from(dequantizeQ4_0(blocks)))
    return q4_0ToNBits(blocks, w.out, w.in)
  })
  const model = await DecoderModel.create({weights: quantized})
  try {
    assert.is(model.summary.nbitsWeights, 5 * 6)
    const [logits] = await model.sequenceLogits([IDS])
    const err = relativeError(logits!, ref.logits(IDS), 512)
    assert.ok(err < 1e-4, `relative error ${err}`)
  } finally {
    await model.release()
    await base.close()
  }
})

test.run()
