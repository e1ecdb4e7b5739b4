import {join} from 'node:path'
import {suite} from 'uvu'
import * as assert from 'uvu/assert'
import {compressFile} from '../../../src/core/compress/compress-file.js'
import {ERROR_FIELD_WIDTH, formatErrorsMetadata} from '../../../src/core/formats/shared-b-writer.js'
import {SharedBFile, sharedBTensorNames} from '../../../src/core/formats/shared-b-file.js'
import {SafetensorsFile} from '../../../src/core/formats/safetensors-file.js'
import {writeSafetensors} from '../../../src/core/formats/safetensors-writer.js'
import {MatMulEngine} from '../../../src/core/linalg/matmul-engine.js'
import {packAdapters} from '../../../src/core/pack/pack-adapters.js'
import {synthesizeAdapters} from '../../../src/core/synth/adapters.js'
import {rejection, tempDir} from '../../helpers/index.js'

const test = suite('compress shared-b-file')
const engine = new MatMulEngine(2)
const tmp = tempDir('lora-shared-b-')
const good = join(tmp.path, 'good.safetensors')

test.before(async () => {
  await synthesizeAdapters({hidden: 16, intermediate: 24, layers: 1, out: join(tmp.path, 'ad'), count: 3, ranks: [2], targets: ['q_proj'], dtype: 'F16', seed: 1, sharedSubspace: 0.5})
  await packAdapters({inputs: [join(tmp.path, 'ad')], out: join(tmp.path, 'pack.safetensors')})
  await compressFile({inputs: [join(tmp.path, 'pack.safetensors')], out: good, selection: {rank: 2}, engine})
})

test.after(async () => {
  await engine.release()
  tmp.cleanup()
})

/** A copy of the good file with its metadata and tensors changed by `edit`. */
async function variant(name: string, edit: (meta: Record<string, string>, tensors: Array<{name: string; dtype: 'F16' | 'F32'; shape: number[]; data: Uint8Array}>) => void): Promise<string> {
  const src = await SafetensorsFile.open(good)
  const meta = Object.fromEntries(src.metadata)
  const tensors = []
  for (const info of src.tensors.values()) tensors.push({name: info.name, dtype: info.dtype as 'F16', shape: [...info.shape], data: await src.readBytes(info.name)})
  await src.close()
  edit(meta, tensors)
  const path = join(tmp.path, name)
  await writeSafetensors(path, tensors, {metadata: meta})
  return path
}

test('the written file reads back: K, per-slot errors (null for slot 0), dtype and tensor names', async () => {
  const file = await SharedBFile.open(good)
  const module = 'model.layers.0.self_attn.q_proj'
  assert.is(file.ranks.get(module), 2)
  assert.is(file.dtype, 'F16')
  assert.is(file.errors[module]!.errors.length, 4)
  assert.is(file.errors[module]!.errors[0], null)
  assert.ok(file.errors[module]!.errors.slice(1).every((e) => typeof e === 'number' && e > 0 && e < 1))
  assert.equal(sharedBTensorNames({name: module, kind: 'linear'}), {a: `${module}.lora_A`, b: `${module}.lora_B_shared`})
  assert.equal(sharedBTensorNames({name: 'embed', kind: 'embedding'}), {a: 'embed.lora_embedding_A', b: 'embed.lora_embedding_B_shared'})
  await file.close()
})

test('the errors metadata has a fixed width whatever the values', () => {
  const a = formatErrorsMetadata({m: {K: 3, errors: [null, 0.1, 1.234567890123e-200]}})
  const b = formatErrorsMetadata({m: {K: 3, errors: [0, 0.000001234567891234, 7]}})
  assert.is(a.length, b.length)
  assert.equal(JSON.parse(a).m.errors, [null, 0.1, 1.23456789e-200])
  assert.ok(a.includes(' '.repeat(ERROR_FIELD_WIDTH - 'null'.length)))
})

test('malformed files are refused with the file and the problem named', async () => {
  const module = 'model.layers.0.self_attn.q_proj'
  const cases: Array<[string, Parameters<typeof variant>[1], string, RegExp]> = [
    ['version.safetensors', (m) => (m.format_version = '9'), 'SHARED_B_UNSUPPORTED_VERSION', /format_version "9"/],
    ['noerrors.safetensors', (m) => delete m.errors, 'SHARED_B_BAD_METADATA', /errors is absent/],
    ['badjson.safetensors', (m) => (m.errors = '{'), 'SHARED_B_BAD_METADATA', /not valid JSON/],
    ['shortlist.safetensors', (m) => (m.errors = JSON.stringify({[module]: {K: 2, errors: [null, 0.1]}})), 'SHARED_B_BAD_METADATA', /one value per slot \(4\)/],
    ['negative.safetensors', (m) => (m.errors = JSON.stringify({[module]: {K: 2, errors: [null, -1, 0.1, 0.1]}})), 'SHARED_B_BAD_METADATA', /non-negative number or null/],
    ['wrongk.safetensors', (m) => (m.errors = JSON.stringify({[module]: {K: 3, errors: [null, 0.1, 0.1, 0.1]}})), 'PACK_TENSOR_MISMATCH', /say \[4, 3, 16\]/],
    ['extra.safetensors', (_, t) => t.push({name: 'stray', dtype: 'F16', shape: [1], data: new Uint8Array(2)}), 'PACK_TENSOR_UNEXPECTED', /"stray"/],
    ['missing.safetensors', (_, t) => t.splice(t.findIndex((x) => x.name.endsWith('B_shared')), 1), 'PACK_TENSOR_MISSING', /lora_B_shared/],
    ['nocompression.safetensors', (m) => delete m.compression, 'SHARED_B_BAD_METADATA', /compression is absent/],
    ['plainpack.safetensors', (m) => (m.format = 'lora-pack'), 'SHARED_B_NOT_ONE', /not a lora-pack-shared-b file/],
  ]
  for (const [name, edit, code, message] of cases) {
    const path = await variant(name, edit)
    const error = await rejection(SharedBFile.open(path))
    assert.is(error.code, code, `${name}: ${error.message}`)
    assert.match(error.message, message)
    assert.ok(error.message.includes(path), 'the message names the file')
  }
})

test.run()
