import {readFileSync} from 'node:fs'
import {join} from 'node:path'
import {suite} from 'uvu'
import * as assert from 'uvu/assert'
import {ExternalDataFile, GraphBuilder, MS_DOMAIN} from '../../../src/core/onnx/graph-builder.js'
import {createSession, loadOrt} from '../../../src/core/onnx/session.js'
import {tempDir} from '../../helpers/index.js'

const test = suite('onnx graph builder')

test('a graph with inline constants and an external initializer loads and computes x·W + b', async () => {
  const tmp = tempDir()
  try {
    const data = ExternalDataFile.create(join(tmp.path, 'w.bin'))
    const w = Float32Array.from([1, 2, 3, 4, 5, 6]) // [2, 3]
    const first = data.add(new Uint8Array(Float32Array.of(9).buffer))
    const range = data.add(new Uint8Array(w.buffer))
    data.close()
    assert.is(first.offset, 0)
    assert.is(range.offset % ExternalDataFile.ALIGNMENT, 0, 'ranges start on 64 KiB boundaries')
    assert.is(readFileSync(join(tmp.path, 'w.bin')).byteLength, range.offset + 24)
    const g = new GraphBuilder('affine')
    g.input('x', 'float32', ['n', 2])
    g.external('W', {location: 'w.bin', range, dims: [2, 3], type: 'float32'})
    g.floats('b', [10, 20, 30])
    const y = g.op('Add', [g.op('MatMul', ['x', 'W']), 'b'])
    const r = g.op('Reshape', [y, g.ints('shape', [-1])])
    g.node('Identity', [r], {}, {outputs: ['y']})
    g.output('y', 'float32', ['m'])
    const path = join(tmp.path, 'affine.onnx')
    const {writeFileSync} = await import('node:fs')
    writeFileSync(path, g.encode())
    const ort = await loadOrt()
    const session = await createSession(path, {ep: 'cpu', threads: 1})
    const out = await session.run({x: new ort.Tensor('float32', Float32Array.from([1, 0, 0, 1, 1, 1]), [3, 2])})
    assert.equal(Array.from(out.y!.data as Float32Array), [11, 22, 33, 14, 25, 36, 15, 27, 39])
    await session.release()
  } finally {
    tmp.cleanup()
  }
})

test('fresh names never collide with declared ones; a declared name twice is refused', () => {
  const g = new GraphBuilder('names')
  const a = g.fresh('t')
  g.input('t_1', 'float32', [1])
  const b = g.fresh('t')
  assert.is.not(a, b)
  assert.is.not(b, 't_1')
  assert.throws(() => g.input('t_1', 'float32', [1]), /name "t_1" is used twice/)
})

test('contrib-domain nodes import the com.microsoft opset', async () => {
  const g = new GraphBuilder('contrib')
  g.input('x', 'float32', [2, 2])
  g.node('FusedMatMul', ['x', 'x'], {alpha: {float: 2}}, {outputs: ['y'], domain: MS_DOMAIN})
  g.output('y', 'float32', [2, 2])
  const ort = await loadOrt()
  const session = await ort.InferenceSession.create(g.encode())
  const out = await session.run({x: new ort.Tensor('float32', Float32Array.from([1, 2, 3, 4]), [2, 2])})
  assert.equal(Array.from(out.y!.data as Float32Array), [14, 20, 30, 44])
  await session.release()
})

test.run()
