import {closeSync, cpSync, existsSync, openSync, readFileSync, readdirSync, writeSync} from 'node:fs'
import {join} from 'node:path'
import {suite} from 'uvu'
import * as assert from 'uvu/assert'
import {toFloat32} from '../../../src/core/dtype.js'
import {InputError} from '../../../src/core/errors.js'
import {SafetensorsFile} from '../../../src/core/formats/safetensors-file.js'
import {pendingExitCleanups} from '../../../src/core/io/exit-cleanup.js'
import {mergeModel} from '../../../src/core/merge/merge-model.js'
import {TASK_BYTES} from '../../../src/core/model-io/encode-tensor.js'
import {quantizeModel} from '../../../src/core/model-io/quantize-model.js'
import {permuteRowsToGguf} from '../../../src/core/models/gguf-names.js'
import {QuantSchemeName, createEncoder} from '../../../src/core/quant/schemes.js'
import {synthesizeBase} from '../../../src/core/synth/base.js'
import {parseGguf} from '../../helpers/gguf-reference.js'
import {rejection, tempDir} from '../../helpers/index.js'
import {normal, randomModule, writeBase, writeLora} from '../../helpers/merge-fixtures.js'

const test = suite('model-io/encode-tensor: threads')

// the MLP weights ([2048, 1024], [1024, 2048]) are two encoding tasks each; q/k/v/o ([1024, 1024]) one
const DIMS = {hidden: 1024, intermediate: 2048, layers: 1, vocab: 512}
const dir = tempDir('lora-threads-')
const base = join(dir.path, 'base')
const Q = 'model.layers.0.self_attn.q_proj.weight'
const UP = 'model.layers.0.mlp.up_proj.weight'

test.before(async () => {
  await synthesizeBase({out: base, ...DIMS, dtype: 'F16', seed: 11})
})
test.after(() => dir.cleanup())

/** Everything the output holds: the GGUF file, or every file of a safetensors folder. */
function outputBytes(out: string): Map<string, Buffer> {
  if (out.endsWith('.gguf')) return new Map([['gguf', readFileSync(out)]])
  return new Map(readdirSync(out).map((f) => [f, readFileSync(join(out, f))]))
}

/** Files in `folder` that look like temporary outputs. */
function temporaries(folder: string): string[] {
  return readdirSync(folder).filter((f) => f.includes('.tmp-'))
}

test('the fixture: MLP weights of two tasks each, so the threads share a tensor', () => {
  // F16: two bytes an element
  assert.is(DIMS.hidden * DIMS.intermediate * 2, 2 * TASK_BYTES)
})

for (const [scheme, extra, counts] of [
  ['q4_0', {}, [1, 2, 7]],
  ['q8_0', {}, [1, 3]],
  ['nf4', {doubleQuant: true}, [1, 3]],
  ['int4', {blockSize: 64}, [1, 3]],
] as Array<[QuantSchemeName, {blockSize?: number; doubleQuant?: boolean}, number[]]>) {
  test(`${scheme}: ${counts.join(', ')} threads${counts.includes(7) ? ' (more threads than tasks)' : ''} write the same bytes`, async () => {
    const outputs: Array<Map<string, Buffer>> = []
    for (const threads of counts) {
      const out = join(dir.path, `${scheme}-t${threads}${scheme.startsWith('q') ? '.gguf' : ''}`)
      const r = await quantizeModel({model: base, out, scheme, ...extra, threads})
      assert.is(r.quantized, 7)
      outputs.push(outputBytes(out))
    }
    for (const [k, other] of outputs.slice(1).entries()) {
      assert.equal([...other.keys()], [...outputs[0]!.keys()])
      for (const [file, bytes] of outputs[0]!) assert.ok(bytes.equals(other.get(file)!), `${file}: ${counts[k + 1]} threads`)
    }
  })
}

test('q4_0 with threads: q rows in llama.cpp order, blocks equal to the one-thread encoder on the permuted tensor', async () => {
  const out = join(dir.path, 'q4_0-t2.gguf')
  const buf = readFileSync(out)
  const g = parseGguf(buf)
  const t = g.tensors.find((x) => x.name === 'blk.0.attn_q.weight')!
  const f = await SafetensorsFile.open(join(base, 'model.safetensors'))
  const values = toFloat32('F16', await f.readBytes(Q))
  await f.close()
  const encoder = createEncoder({scheme: 'q4_0', blockSize: 32, doubleQuant: false}, [1024, 1024])
  encoder.push(permuteRowsToGguf(values, 16, 1024))
  const expected = encoder.finish().data as Uint8Array
  const at = g.dataStart + Number(t.offset)
  assert.ok(buf.subarray(at, at + expected.length).equals(expected))
})

test('merge --quantize q4_0 (rows changed on this thread, encoded by the threads): 1 and 2 threads write the same bytes', async () => {
  const adapter = join(dir.path, 'adapter')
  await writeLora(adapter, [randomModule('model.layers.0.self_attn.q_proj', 1024, 1024, 8, 'a'), randomModule('model.layers.0.mlp.up_proj', 1024, 2048, 8, 'b')], {r: 8, alpha: 16})
  const files: Buffer[] = []
  for (const threads of [1, 2]) {
    const out = join(dir.path, `merged-t${threads}.gguf`)
    await mergeModel({base, adapters: [{path: adapter}], quantize: 'q4_0', out, quality: false, threads})
    files.push(readFileSync(out))
  }
  assert.ok(files[0]!.equals(files[1]!))
})

test('GPT-2 Conv1D weights transposed before nf4: 1 and 3 threads write the same bytes', async () => {
  const gpt2 = join(dir.path, 'gpt2')
  await writeBase(gpt2, [{name: 'transformer.h.0.attn.c_attn.weight', shape: [64, 192], dtype: 'F16', values: normal(64 * 192, 0.1, 'c')}], {config: {model_type: 'gpt2'}})
  const outputs: Array<Map<string, Buffer>> = []
  for (const threads of [1, 3]) {
    const out = join(dir.path, `gpt2-nf4-t${threads}`)
    await quantizeModel({model: gpt2, out, scheme: 'nf4', threads})
    outputs.push(outputBytes(out))
  }
  assert.ok(outputs[0]!.get('model.safetensors')!.equals(outputs[1]!.get('model.safetensors')!))
})

/** A copy of the base with NaN written at the given elements of `name`. */
async function baseWithNaN(folder: string, name: string, elements: number[]): Promise<void> {
  cpSync(base, folder, {recursive: true})
  const f = await SafetensorsFile.open(join(folder, 'model.safetensors'))
  const at = f.dataStart + f.tensors.get(name)!.dataOffsets[0]
  await f.close()
  const fd = openSync(join(folder, 'model.safetensors'), 'r+')
  try {
    for (const e of elements) writeSync(fd, Buffer.from([0x00, 0x7e]), 0, 2, at + 2 * e)
  } finally {
    closeSync(fd)
  }
}

test('NaN in the second task and in the first: the first in row order is reported (TENSOR_NOT_FINITE, as reading refuses it), the same line on 1 and 2 threads, and nothing is left behind', async () => {
  const bad = join(dir.path, 'nan-base')
  // row 1500 lies in the second task of up_proj ([2048, 1024]), row 100 in the first
  await baseWithNaN(bad, UP, [1500 * 1024 + 3, 100 * 1024 + 5])
  const messages: string[] = []
  for (const threads of [1, 2]) {
    const out = join(dir.path, 'nan-out', `q-t${threads}.gguf`)
    const error = await rejection(quantizeModel({model: bad, out, scheme: 'q4_0', threads}))
    assert.instance(error, InputError)
    assert.is(error.code, 'TENSOR_NOT_FINITE')
    assert.is(error.exitCode, 2)
    assert.not.ok(existsSync(out))
    assert.equal(temporaries(join(dir.path, 'nan-out')), [])
    messages.push(error.message)
  }
  // refused as reading refuses it: the file, the tensor, the first bad element as stored
  assert.is(messages[0], `read ${bad}: tensor "${UP}" holds NaN at element ${100 * 1024 + 5} (row 100, offset 5 in the row); a computation on it would give NaN everywhere`)
  assert.is(messages[1], messages[0])
})

test('a run stopped part-way (here by its progress callback): the temporary output was registered for removal on a signal, and nothing is left', async () => {
  const folder = join(dir.path, 'stopped')
  const out = join(folder, 'q.gguf')
  let seen = false
  const before = pendingExitCleanups()
  const error = await rejection(
    quantizeModel({
      model: base,
      out,
      scheme: 'q4_0',
      threads: 2,
      onProgress: ({done}) => {
        if (done < 3) return
        seen = true
        assert.equal(temporaries(folder).length, 1, 'the temporary file exists while writing')
        assert.ok(pendingExitCleanups() > before, 'a signal now would remove it')
        throw new Error('stopped')
      },
    }),
  )
  assert.ok(seen)
  assert.is(error.message, 'stopped')
  assert.not.ok(existsSync(out))
  assert.equal(temporaries(folder), [])
  assert.is(pendingExitCleanups(), before)
})

test.run()
