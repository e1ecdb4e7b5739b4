import {writeFileSync} from 'node:fs'
import {join} from 'node:path'
import {suite} from 'uvu'
import * as assert from 'uvu/assert'
import {BenchReport, BenchResult, compareWithBaseline, describeRegressions, readReport} from '../../../src/core/bench/report.js'
import {tempDir} from '../../helpers/index.js'

const test = suite('bench report')

const result = (strategy: string, adapters: number, relative: number): BenchResult => ({
  strategy,
  adapters,
  tokens_per_s: 100 * relative,
  latency_ms: {mean: 1, p50: 1, p99: 1},
  relative_to_base: relative,
  weight_bytes: 0,
  max_abs_error: 0,
  samples: 1,
})
const report = (results: BenchResult[]) => ({config: {}, results}) as unknown as BenchReport

test('baseline: a fall of more than max-regression fails, a smaller one or a gain passes; only pairs in both count', () => {
  const old = report([result('base', 10, 1), result('gather', 10, 0.9), result('mask', 10, 0.5), result('segment', 100, 0.8)])
  const now = report([result('base', 10, 1), result('gather', 10, 0.80), result('mask', 10, 0.46), result('segment', 10, 0.1)])
  const failures = compareWithBaseline(now, old, 0.1)
  assert.equal(failures, [{strategy: 'gather', adapters: 10, baseline: 0.9, current: 0.8}])
  assert.equal(compareWithBaseline(now, old, 0.2), [])
  assert.match(describeRegressions(failures, 0.1), /^gather at 10 adapters: relative_to_base 0\.800 vs baseline 0\.900 \(fell 11\.1%, limit 10\.0%\)$/)
  assert.equal(compareWithBaseline(report([result('gather', 10, NaN)]), old, 0.1).length, 1, 'NaN never passes')
})

test('readReport refuses missing, non-JSON and wrongly shaped files with one line naming the file', () => {
  const tmp = tempDir()
  try {
    assert.throws(() => readReport(join(tmp.path, 'none.json')), (e: Error) => /^read baseline .*none\.json: no such file or directory$/.test(e.message))
    writeFileSync(join(tmp.path, 'text.json'), 'hello')
    assert.throws(() => readReport(join(tmp.path, 'text.json')), /text\.json: not valid JSON/)
    writeFileSync(join(tmp.path, 'shape.json'), '{"results": 3}')
    assert.throws(() => readReport(join(tmp.path, 'shape.json')), /expected a bench report/)
    writeFileSync(join(tmp.path, 'row.json'), '{"config": {}, "results": [{"strategy": "gather"}]}')
    assert.throws(() => readReport(join(tmp.path, 'row.json')), /results\[0\] lacks strategy, adapters or relative_to_base/)
    writeFileSync(join(tmp.path, 'ok.json'), JSON.stringify(report([result('base', 1, 1)])))
    assert.is(readReport(join(tmp.path, 'ok.json')).results.length, 1)
  } finally {
    tmp.cleanup()
  }
})

test.run()
