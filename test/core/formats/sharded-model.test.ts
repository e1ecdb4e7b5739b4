import {mkdirSync, writeFileSync} from 'node:fs'
import {join} from 'node:path'
import {suite} from 'uvu'
import * as assert from 'uvu/assert'
import {InputError} from '../../../src/core/errors.js'
import {SafetensorsFile} from '../../../src/core/formats/safetensors-file.js'
import {writeSafetensors} from '../../../src/core/formats/safetensors-writer.js'
import {ShardedModel, openModel} from '../../../src/core/formats/sharded-model.js'
import {rejection, tempDir} from '../../helpers/index.js'

const test = suite('sharded-model')

async function shardedFolder(dir: string, weightMap: Record<string, string>): Promise<void> {
  await writeSafetensors(join(dir, 'model-00001-of-00002.safetensors'), [
    {name: 'a', dtype: 'F32', shape: [2], data: new Float32Array([1, 2])},
  ])
  await writeSafetensors(join(dir, 'model-00002-of-00002.safetensors'), [
    {name: 'b', dtype: 'F16', shape: [1], data: new Uint16Array([0x3c00])},
    {name: 'c', dtype: 'U8', shape: [3], data: new Uint8Array([1, 2, 3])},
  ])
  writeFileSync(join(dir, 'model.safetensors.index.json'), JSON.stringify({metadata: {total_size: 13}, weight_map: weightMap}))
}

test('an index is read as one logical tensor map', async () => {
  const dir = tempDir()
  try {
    await shardedFolder(dir.path, {a: 'model-00001-of-00002.safetensors', b: 'model-00002-of-00002.safetensors', c: 'model-00002-of-00002.safetensors'})
    const model = await openModel(dir.path)
    assert.instance(model, ShardedModel)
    assert.equal([...model.tensors.keys()], ['a', 'b', 'c'])
    assert.equal([...(await model.readTensor('a')).toFloat32()], [1, 2])
    assert.equal([...(await model.readTensor('b')).toFloat32()], [1])
    assert.equal([...(await model.readRows('c', 1, 2)).bytes], [2, 3])
    assert.equal({...(model as ShardedModel).indexMetadata}, {total_size: 13})
    await model.close()
  } finally {
    dir.cleanup()
  }
})

test('openModel accepts a file, an index, or a folder with model.safetensors', async () => {
  const dir = tempDir()
  try {
    await writeSafetensors(join(dir.path, 'model.safetensors'), [{name: 'w', dtype: 'F32', shape: [1], data: new Float32Array([3])}])
    const m = await openModel(dir.path)
    assert.instance(m, SafetensorsFile)
    await m.close()
    const f = await openModel(join(dir.path, 'model.safetensors'))
    assert.equal([...(await f.readTensor('w')).toFloat32()], [3])
    await f.close()
    mkdirSync(join(dir.path, 'empty'))
    const e = await rejection(openModel(join(dir.path, 'empty')))
    assert.is(e.code, 'NOT_A_MODEL')
  } finally {
    dir.cleanup()
  }
})

const refusals: Array<[string, Record<string, unknown>, string, RegExp]> = [
  ['a shard that does not exist', {weight_map: {a: 'model-00009-of-00009.safetensors'}}, 'SHARD_MISSING', /shard "model-00009-of-00009.safetensors" named in weight_map does not exist/],
  ['an absolute shard path', {weight_map: {a: '/etc/passwd'}}, 'SHARD_PATH_UNSAFE', /must be a relative path inside the model folder/],
  ['a shard path with ..', {weight_map: {a: '../x.safetensors'}}, 'SHARD_PATH_UNSAFE', /relative path inside/],
  ['a tensor missing from its shard', {weight_map: {zz: 'model-00001-of-00002.safetensors'}}, 'SHARD_TENSOR_MISSING', /puts "zz" in model-00001-of-00002.safetensors, which has no such tensor/],
  ['no weight_map', {metadata: {}}, 'SHARD_INDEX_NO_WEIGHT_MAP', /no "weight_map" object/],
]

for (const [name, index, code, message] of refusals) {
  test(`refuses ${name}`, async () => {
    const dir = tempDir()
    try {
      await shardedFolder(dir.path, {})
      writeFileSync(join(dir.path, 'model.safetensors.index.json'), JSON.stringify(index))
      const error = await rejection(openModel(dir.path))
      assert.instance(error, InputError)
      assert.is(error.code, code)
      assert.match(error.message, message)
      assert.match(error.message, /model\.safetensors\.index\.json: /)
    } finally {
      dir.cleanup()
    }
  })
}

test('refuses an index with a repeated tensor key', async () => {
  const dir = tempDir()
  try {
    await shardedFolder(dir.path, {})
    writeFileSync(join(dir.path, 'model.safetensors.index.json'), '{"weight_map": {"a": "model-00001-of-00002.safetensors", "a": "model-00002-of-00002.safetensors"}}')
    const error = await rejection(openModel(dir.path))
    assert.is(error.code, 'SHARD_INDEX_NOT_JSON')
    assert.match(error.message, /appears twice/)
  } finally {
    dir.cleanup()
  }
})

test.run()
