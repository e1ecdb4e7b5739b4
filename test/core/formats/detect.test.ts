import {mkdirSync, renameSync, writeFileSync} from 'node:fs'
import {join} from 'node:path'
import {suite} from 'uvu'
import * as assert from 'uvu/assert'
import {InputError} from '../../../src/core/errors.js'
import {FILE_FORMATS, detect} from '../../../src/core/formats/detect.js'
import {writeSafetensors} from '../../../src/core/formats/safetensors-writer.js'
import {tempDir} from '../../helpers/index.js'
import {normal, randomModule, writeBase, writeLora} from '../../helpers/merge-fixtures.js'

const test = suite('formats/detect')

const TENSORS = [
  {name: 'model.layers.0.self_attn.q_proj.weight', shape: [8, 8], values: normal(64, 0.1, 'q')},
  {name: 'model.layers.0.mlp.up_proj.weight', shape: [16, 8], values: normal(128, 0.1, 'u')},
]

/** A one-tensor safetensors file whose `__metadata__.format` is `format`. */
async function tagged(path: string, format: string): Promise<void> {
  await writeSafetensors(path, [{name: 'x', dtype: 'F32', shape: [1], data: new Float32Array(1)}], {metadata: {format}})
}

async function rejects(path: string, code: string): Promise<void> {
  try {
    await detect(path)
  } catch (error) {
    assert.instance(error, InputError)
    assert.is((error as InputError).code, code, (error as Error).message)
    return
  }
  assert.unreachable(`${path} was detected`)
}

test('the registry lists the specific formats before the general ones', () => {
  assert.equal(
    FILE_FORMATS.map((f) => f.kind),
    ['adapter', 'gguf', 'pack', 'shared-b', 'model', 'safetensors'],
  )
})

test('each kind, from what the path holds, not from its name', async () => {
  const dir = tempDir()
  try {
    const at = (name: string) => join(dir.path, name)
    await writeLora(at('adapter'), [randomModule('model.layers.0.self_attn.q_proj', 8, 8, 2, 'a')], {r: 2, alpha: 4})
    await writeBase(at('model'), TENSORS)
    await writeBase(at('sharded'), TENSORS, {shards: [[TENSORS[0]!.name], [TENSORS[1]!.name]]})
    await tagged(at('pack.safetensors'), 'lora-pack')
    await tagged(at('shared.bin'), 'lora-pack-shared-b')
    await tagged(at('pt.safetensors'), 'pt')
    mkdirSync(at('folder-of-a-pack'))
    await tagged(at('folder-of-a-pack/p.safetensors'), 'lora-pack')
    // a GGUF header (magic, version 3, no tensors, no metadata) under a name with no extension
    const gguf = Buffer.alloc(24)
    gguf.write('GGUF', 0, 'latin1')
    gguf.writeUInt32LE(3, 4)
    writeFileSync(at('model-tmp'), gguf)
    const kinds = {
      adapter: await detect(at('adapter')),
      model: await detect(at('model')),
      modelFile: await detect(at('model/model.safetensors')),
      sharded: await detect(at('sharded')),
      index: await detect(at('sharded/model.safetensors.index.json')),
      pack: await detect(at('pack.safetensors')),
      shared: await detect(at('shared.bin')),
      plain: await detect(at('pt.safetensors')),
      folderOfAPack: await detect(at('folder-of-a-pack')),
      gguf: await detect(at('model-tmp')),
    }
    assert.equal(kinds, {
      adapter: 'adapter',
      model: 'model',
      modelFile: 'safetensors',
      sharded: 'model',
      index: 'model',
      pack: 'pack',
      shared: 'shared-b',
      plain: 'safetensors',
      folderOfAPack: 'pack',
      gguf: 'gguf',
    })
  } finally {
    dir.cleanup()
  }
})

test('what is no known format is an InputError naming the path and the problem', async () => {
  const dir = tempDir()
  try {
    const garbage = join(dir.path, 'garbage')
    writeFileSync(garbage, Buffer.from('not a model at all, just text'))
    await rejects(garbage, 'SAFETENSORS_HEADER_TOO_LARGE')
    const short = join(dir.path, 'short')
    writeFileSync(short, Buffer.from('GG'))
    await rejects(short, 'SAFETENSORS_TOO_SHORT')
    mkdirSync(join(dir.path, 'empty'))
    await rejects(join(dir.path, 'empty'), 'NOT_A_MODEL')
    await rejects(join(dir.path, 'missing'), 'IO_ENOENT')
    // the same file renamed does not change its kind: only its bytes count
    renameSync(garbage, join(dir.path, 'garbage.gguf'))
    await rejects(join(dir.path, 'garbage.gguf'), 'SAFETENSORS_HEADER_TOO_LARGE')
  } finally {
    dir.cleanup()
  }
})

test.run()
