import {suite} from 'uvu'
import * as assert from 'uvu/assert'
import {GraphBuilder} from '../../../src/core/onnx/graph-builder.js'
import {BASELINE, GRAPH_STRATEGIES, STRATEGIES, STRATEGY_TABLE, describeStrategies, isStrategy, strategyOf} from '../../../src/core/serve/registry.js'
import {declareRoutingInputs} from '../../../src/core/serve/strategy.js'

const test = suite('serve: the strategy table')

const STEP = {slots: Int32Array.from([2, 0, 2]), mixtures: undefined}

test('names are unique, in table order, and each looks itself up', () => {
  assert.equal([...STRATEGIES], STRATEGY_TABLE.map((s) => s.name))
  const builtIn = ['base', 'gather', 'segment', 'shared-b', 'mask', 'merged']
  assert.equal(STRATEGIES.filter((n) => builtIn.includes(n)), builtIn, 'the built-in strategies, in report order')
  assert.is(new Set(STRATEGIES).size, STRATEGIES.length)
  for (const s of STRATEGY_TABLE) {
    assert.ok(isStrategy(s.name))
    assert.is(strategyOf(s.name), s)
    assert.ok(Object.isFrozen(s), `${s.name} is frozen`)
  }
  assert.not.ok(isStrategy('lora'))
  assert.throws(() => strategyOf('lora'), (e: Error) => e.message === `unknown serving strategy "lora" (the table has ${STRATEGIES.join(', ')})`)
})

test("each strategy's feeds fill exactly the routing inputs it declares, with their element types and ranks", () => {
  for (const s of STRATEGY_TABLE) {
    for (const tokens of [1, 2]) {
      const feeds = s.feeds(STEP, tokens, 5)
      assert.equal(Object.keys(feeds).sort(), s.routingInputs.map((i) => i.name).sort(), s.name)
      for (const input of s.routingInputs) {
        const feed = feeds[input.name]!
        assert.is(feed.data instanceof BigInt64Array ? 'int64' : 'float32', input.type, `${s.name} ${input.name}`)
        assert.is(feed.dims.length, input.dims(5).length, `${s.name} ${input.name} rank`)
        assert.is(feed.data.length, feed.dims.reduce((a, b) => a * b, 1), `${s.name} ${input.name} size`)
      }
    }
    const g = new GraphBuilder('inputs')
    assert.equal(Object.keys(declareRoutingInputs(g, s, 5)), s.routingInputs.map((i) => i.name))
  }
})

test('a strategy reads the weights its reference uses; the baseline reads none and adds no delta', () => {
  for (const s of STRATEGY_TABLE) {
    if (s.reference === 'base') {
      assert.equal([...s.weights], [], s.name)
      assert.is(s.fragment, undefined, s.name)
    } else assert.ok(s.weights.includes(s.reference), `${s.name} reads its ${s.reference} weights`)
  }
  assert.is(strategyOf(BASELINE).reference, 'base')
})

test('every strategy is one graph (fragment or baseline) or brings its own executor, never both', () => {
  for (const s of STRATEGY_TABLE) {
    const graph = s.fragment !== undefined || s.name === BASELINE
    assert.is.not(graph, s.createExecutor !== undefined, s.name)
  }
  assert.equal([...GRAPH_STRATEGIES], STRATEGY_TABLE.filter((s) => !s.createExecutor).map((s) => s.name))
})

test('describeStrategies names every strategy with its summary, the baseline alone', () => {
  const text = describeStrategies()
  assert.ok(text.startsWith(`${BASELINE}, `))
  for (const s of STRATEGY_TABLE) if (s.name !== BASELINE) assert.ok(text.includes(`${s.name} (${s.summary})`), s.name)
  assert.match(text, / and merged \(/)
})

test.run()
