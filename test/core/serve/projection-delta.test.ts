import {suite} from 'uvu'
import * as assert from 'uvu/assert'
import {fromFloat, toFloat32} from '../../../src/core/dtype.js'
import {GraphBuilder} from '../../../src/core/onnx/graph-builder.js'
import {createSession, loadOrt} from '../../../src/core/onnx/session.js'
import {InlineTensor, ProjectionStacks, emitProjectionDelta} from '../../../src/core/serve/projection-delta.js'
import {STRATEGY_TABLE, strategyOf} from '../../../src/core/serve/registry.js'
import type {RoutingStep} from '../../../src/core/serve/routing.js'
import {ServeStrategy, declareRoutingInputs} from '../../../src/core/serve/strategy.js'
import {Rng} from '../../../src/core/random.js'

const test = suite('serve: one projection delta on a graph of its own')

const S = 4
const IN = 6
const OUT = 5
const R = 3
const K = 2
const STEP: RoutingStep = {slots: Int32Array.from([3, 0, 1, 3])}

/** Seeded stacks with slot 0 all zeros, as Float32Arrays (f16-rounded when `half`). */
function stacks(half: boolean): Record<'A' | 'B' | 'Ak' | 'Bk', {values: Float32Array; dims: number[]}> {
  const rng = new Rng(11, 'projection-delta')
  const make = (dims: number[], zeroSlot: boolean) => {
    const values = rng.fillNormal(new Float32Array(dims.reduce((a, b) => a * b, 1)), 0.5)
    if (zeroSlot) values.fill(0, 0, values.length / dims[0]!)
    return {values: half ? toFloat32('F16', fromFloat('F16', values)) : values, dims}
  }
  return {A: make([S, R, IN], true), B: make([S, OUT, R], true), Ak: make([S, K, IN], true), Bk: make([K, OUT], false)}
}

function inline(s: ReturnType<typeof stacks>, half: boolean): ProjectionStacks {
  const t = ({values, dims}: {values: Float32Array; dims: number[]}): InlineTensor =>
    half ? {data: new Uint16Array(fromFloat('F16', values).buffer), dims, type: 'float16'} : {data: values, dims, type: 'float32'}
  return {A: t(s.A), B: t(s.B), Ak: t(s.Ak), Bk: t(s.Bk)}
}

/** The float64 delta of every row for the strategy's reference kind. */
function expected(strategy: ServeStrategy, s: ReturnType<typeof stacks>, x: Float32Array, tokens: number): Float64Array {
  const y = new Float64Array(STEP.slots.length * tokens * OUT)
  for (let row = 0; row < STEP.slots.length * tokens; row++) {
    const slot = STEP.slots[Math.floor(row / tokens)]!
    const [a, width] = strategy.reference === 'shared' ? [s.Ak.values, K] : [s.A.values, R]
    const h = new Float64Array(width)
    for (let c = 0; c < width; c++) for (let i = 0; i < IN; i++) h[c]! += a[(slot * width + c) * IN + i]! * x[row * IN + i]!
    for (let o = 0; o < OUT; o++) {
      let d = 0
      for (let c = 0; c < width; c++) d += (strategy.reference === 'shared' ? s.Bk.values[c * OUT + o]! : s.B.values[(slot * OUT + o) * R + c]!) * h[c]!
      y[row * OUT + o] = d
    }
  }
  return y
}

async function run(strategy: ServeStrategy, projection: ProjectionStacks, tokens: number, x: Float32Array): Promise<Float32Array> {
  const g = new GraphBuilder(`delta-${strategy.name}`)
  g.input('x', 'float32', ['rows', IN])
  const routing = declareRoutingInputs(g, strategy, S)
  const delta = emitProjectionDelta({g, strategy, key: 'layers.0.q_proj', in: IN, out: OUT, x: 'x', stacks: projection, routing, tokens})
  g.node('Identity', [delta], {}, {outputs: ['delta']})
  g.output('delta', 'float32', ['rows', OUT])
  const ort = await loadOrt()
  const session = await createSession(g.encode(), {threads: 1})
  try {
    const feeds: Record<string, import('onnxruntime-node').Tensor> = {x: new ort.Tensor('float32', x, [x.length / IN, IN])}
    for (const [name, a] of Object.entries(strategy.feeds(STEP, tokens, S))) feeds[name] = a.data instanceof Float32Array ? new ort.Tensor('float32', a.data, a.dims) : new ort.Tensor('int64', a.data, a.dims)
    return (await session.run(feeds)).delta!.data as Float32Array
  } finally {
    await session.release()
  }
}

const withFragment = STRATEGY_TABLE.filter((s) => s.fragment)

test('the strategies with a delta fragment include gather, segment, shared-b and mask', () => {
  for (const name of ['gather', 'segment', 'shared-b', 'mask']) assert.ok(withFragment.some((s) => s.name === name), name)
})

for (const half of [false, true]) {
  for (const tokens of [1, 3]) {
    test(`every strategy's fragment, alone in a graph with inline ${half ? 'f16' : 'f32'} stacks, gives s·B·A·x (or Uᵀ·A'·x) per request, ${tokens === 1 ? 'decode' : `prefill T=${tokens}`}, slot 0 = no delta`, async () => {
      const s = stacks(half)
      const x = new Rng(5, 'x', tokens).fillNormal(new Float32Array(STEP.slots.length * tokens * IN))
      for (const strategy of withFragment) {
        const got = await run(strategy, inline(s, half), tokens, x)
        const want = expected(strategy, s, x, tokens)
        let err = 0
        let ref = 0
        want.forEach((v, i) => {
          err = Math.max(err, Math.abs(v - got[i]!))
          ref = Math.max(ref, Math.abs(v))
        })
        assert.ok(err <= 1e-5 * ref, `${strategy.name}: max error ${err} against max |delta| ${ref}`)
        // request 1 routes to slot 0: its rows carry no delta
        for (let i = tokens * OUT; i < 2 * tokens * OUT; i++) assert.is(got[i], 0, `${strategy.name}: slot-0 row`)
      }
    })
  }
}

test('a strategy without a fragment, missing stacks or stacks of the wrong dims are refused', () => {
  const s = inline(stacks(false), false)
  const g = new GraphBuilder('refusals')
  g.input('x', 'float32', ['rows', IN])
  const gather = strategyOf('gather')
  const routing = declareRoutingInputs(g, gather, S)
  const options = {g, key: 'p', in: IN, out: OUT, x: 'x', routing, tokens: 1}
  assert.throws(() => emitProjectionDelta({...options, strategy: strategyOf('base'), stacks: s}), /base adds no delta fragment/)
  assert.throws(() => emitProjectionDelta({...options, strategy: gather, stacks: {Ak: s.Ak, Bk: s.Bk}}), /reads p\.A, which projection p was not given/)
  assert.throws(() => emitProjectionDelta({...options, strategy: gather, out: OUT + 1, stacks: s}), /B has dims \[4, 5, 3\], expected \[4, 6, 3\]/)
})

test.run()
