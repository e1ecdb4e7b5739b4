import {suite} from 'uvu'
import * as assert from 'uvu/assert'
import {slotFeed} from '../../../src/core/serve/fragments.js'
import {strategyOf} from '../../../src/core/serve/registry.js'
import {maskFeed} from '../../../src/core/serve/strategies/mask.js'
import {segmentFeed} from '../../../src/core/serve/strategies/segment.js'

const test = suite('serve routing feeds')

const big = (a: BigInt64Array) => Array.from(a, Number)

test('segments: requests grouped by adapter in order of first appearance, padded to the longest, with the inverse permutation', () => {
  // requests 0..4 want slots 7, 2, 7, 0, 7; two tokens each
  const s = segmentFeed({slots: Int32Array.from([7, 2, 7, 0, 7])}, 2)
  assert.equal(big(s.slots), [7, 2, 0])
  assert.is(s.rowsPerSegment, 6)
  assert.equal(big(s.rows), [0, 1, 4, 5, 8, 9, /* slot 2 */ 2, 3, 2, 2, 2, 2, /* slot 0 */ 6, 7, 6, 6, 6, 6])
  assert.equal(big(s.unperm), [0, 1, 6, 7, 2, 3, 12, 13, 4, 5])
  // unperm really inverts rows for every real row
  for (let row = 0; row < 10; row++) assert.is(Number(s.rows[Number(s.unperm[row])]), row)
})

test('mask: one-hot rows per token, slot-0 rows all zero, mixtures weighted', () => {
  const m = maskFeed({slots: Int32Array.from([2, 0])}, 2, 4)
  assert.equal(Array.from(m), [0, 0, 1, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0])
  const w = maskFeed({slots: Int32Array.from([1]), mixtures: [[{slot: 1, weight: 0.25}, {slot: 3, weight: 0.75}, {slot: 1, weight: 0.5}]]}, 1, 4)
  assert.equal(Array.from(w), [0, 0.75, 0, 0.75])
})

test('routing inputs per strategy carry their shapes', () => {
  const step = {slots: Int32Array.from([3, 1, 3])}
  assert.equal(Object.keys(strategyOf('base').feeds(step, 1, 5)), [])
  assert.equal(strategyOf('gather').feeds(step, 1, 5).slots!.dims, [3])
  assert.equal(big(slotFeed(step)), [3, 1, 3])
  assert.equal(strategyOf('mask').feeds(step, 2, 5).mask!.dims, [6, 5])
  const seg = strategyOf('segment').feeds(step, 1, 5)
  assert.equal([seg.seg_slots!.dims, seg.seg_rows!.dims, seg.unperm!.dims], [[2], [4], [3]])
})

test.run()
