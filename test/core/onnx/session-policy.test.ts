import {suite} from 'uvu'
import * as assert from 'uvu/assert'
import {GraphBuilder} from '../../../src/core/onnx/graph-builder.js'
import {DEFAULT_INTRA_OP_THREADS, DISABLED_OPTIMIZERS, createSession, loadOrt, sessionOptions} from '../../../src/core/onnx/session.js'

const test = suite('onnx: the one session policy')

test('default: CPU provider, the default threads, no spinning pools, the same fusions off', () => {
  const o = sessionOptions()
  assert.equal(o.executionProviders, ['cpu'])
  assert.is(o.intraOpNumThreads, DEFAULT_INTRA_OP_THREADS)
  assert.is(o.interOpNumThreads, 1)
  assert.is(o.graphOptimizationLevel, 'all')
  const extra = o.extra as {session: {intra_op: {allow_spinning: string}}; optimization: {disable_specified_optimizers: string}}
  assert.is(extra.session.intra_op.allow_spinning, '0')
  assert.is(extra.optimization.disable_specified_optimizers, DISABLED_OPTIMIZERS.join(','))
})

test('another provider is backed by the CPU one; threads as asked', () => {
  const o = sessionOptions({ep: 'webgpu', threads: 3})
  assert.equal(o.executionProviders, ['webgpu', 'cpu'])
  assert.is(o.intraOpNumThreads, 3)
})

test('a session from encoded bytes runs a float64 graph of the builder', async () => {
  const g = new GraphBuilder('f64')
  g.input('a', 'float64', ['m', 'k'])
  g.constant('b', Float64Array.from([1, 0, 0, 1, 0, 0]), [3, 2])
  g.node('MatMul', ['a', 'b'], {}, {outputs: ['c']})
  g.output('c', 'float64', ['m', 2])
  const ort = await loadOrt()
  const session = await createSession(g.encode(), {threads: 1})
  const out = await session.run({a: new ort.Tensor('float64', Float64Array.from([1 / 3, 0.1, 7, 0, 0, 0]), [2, 3])})
  // 1/3 and 0.1 come back as the float64 values (through float32 they would not)
  assert.equal(Array.from(out.c!.data as Float64Array), [1 / 3, 0.1, 0, 0])
  await session.release()
})

test.run()
