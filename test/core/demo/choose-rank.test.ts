import {suite} from 'uvu'
import * as assert from 'uvu/assert'
import {chooseSharedRank} from '../../../src/core/demo/choose-rank.js'
import {sweepReport as sweep} from '../../helpers/compress-fixtures.js'

const test = suite('demo choose-rank')

test('the smallest K within the bound that saves bytes', () => {
  const c = chooseSharedRank(sweep([[1, 98, 0.9], [2, 96, 0.5], [4, 90, 0.15], [8, 80, 0.05]]), 0.2)
  assert.equal([c.K, c.met, c.max_error], [4, true, 0.2])
  assert.match(c.rule, /smallest K whose largest per-adapter error is ≤ 0.2/)
})

test('a bound met exactly counts as met', () => {
  assert.is(chooseSharedRank(sweep([[1, 98, 0.3], [2, 96, 0.2]]), 0.2).K, 2)
})

test('a K that saves nothing is never chosen, even within the bound', () => {
  const c = chooseSharedRank(sweep([[16, 50, 0.4], [32, 0, 0.1], [64, -2, 0.01]]), 0.2)
  assert.equal([c.K, c.met], [16, false])
  assert.match(c.rule, /none does/)
})

test('no K within the bound: the saving K with the smallest largest error', () => {
  const c = chooseSharedRank(sweep([[1, 98, 0.9], [2, 96, 0.6], [4, 90, 0.7]]), 0.1)
  assert.equal([c.K, c.met], [2, false])
})

test('no K saves bytes: DEMO_NO_SAVING_K', () => {
  let error: (Error & {code?: string}) | undefined
  try {
    chooseSharedRank(sweep([[64, -1.5, 0.1]]), 0.2)
  } catch (e) {
    error = e as Error & {code?: string}
  }
  assert.is(error?.code, 'DEMO_NO_SAVING_K')
  assert.match(error!.message, /pack\.safetensors/)
})

test.run()
