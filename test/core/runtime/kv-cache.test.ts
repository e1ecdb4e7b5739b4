/**
 * The KV cache's row bookkeeping: rows taken out of a batch and batches
 * joined keep each row's valid positions and re-pad to the longest.
 */
import {suite} from 'uvu'
import * as assert from 'uvu/assert'
import {KvCache} from '../../../src/core/runtime/kv-cache.js'

const test = suite('runtime/kv-cache')
const config = {layers: 2, kvHeads: 2, headDim: 2}

/** A cache whose value at (layer, row, head, pos, i) encodes those indices (padding −1). */
function labelled(lengths: number[], capacity: number, tag: number): KvCache {
  const make = (kind: number) =>
    Array.from({length: config.layers}, (_, l) => {
      const a = new Float32Array(lengths.length * config.kvHeads * capacity * config.headDim).fill(-1)
      lengths.forEach((len, r) => {
        for (let h = 0; h < config.kvHeads; h++)
          for (let p = 0; p < len; p++) for (let i = 0; i < config.headDim; i++) a[((r * config.kvHeads + h) * capacity + p) * config.headDim + i] = tag * 10000 + kind * 1000 + l * 100 + r * 10 + h + p / 10 + i / 100
      })
      return a
    })
  return KvCache.of(config, lengths, capacity, make(0), make(1))
}

function at(c: KvCache, l: number, r: number, h: number, p: number, i: number): number {
  return c.keys[l]![((r * c.kvHeads + h) * c.capacity + p) * c.headDim + i]!
}

test('take keeps the chosen rows, in order, cut to their longest length', () => {
  const c = labelled([3, 1, 4], 5, 1)
  const t = c.take([2, 0])
  assert.equal(t.lengths, [4, 3])
  assert.is(t.capacity, 4)
  assert.is(at(t, 1, 0, 1, 3, 1), at(c, 1, 2, 1, 3, 1))
  assert.is(at(t, 0, 1, 0, 2, 0), at(c, 0, 0, 0, 2, 0))
  assert.is(at(t, 0, 1, 0, 3, 0), 0) // padding past row 1's length
  assert.is(t.values[1]![0], c.values[1]![((2 * 2 + 0) * 5 + 0) * 2]!)
  assert.is(t.bytes, 2 * 2 * 2 * 2 * 4 * 2 * 4)
})

test('concat joins batches of different capacities; empty caches join too', () => {
  const a = labelled([2], 2, 1)
  const b = labelled([5, 1], 6, 2)
  const j = KvCache.concat([a, KvCache.empty(config, 1), b])
  assert.equal(j.lengths, [2, 0, 5, 1])
  assert.is(j.capacity, 5)
  assert.is(at(j, 1, 0, 1, 1, 1), at(a, 1, 0, 1, 1, 1))
  assert.is(at(j, 0, 2, 0, 4, 1), at(b, 0, 0, 0, 4, 1))
  assert.is(at(j, 0, 3, 1, 0, 0), at(b, 0, 1, 1, 0, 0))
})

test('an allocated cache keeps its rows when moved to a larger capacity, and is written in place', () => {
  const c = labelled([3, 1], 4, 3)
  assert.not.ok(c.inPlace)
  const big = c.withCapacity(7)
  assert.ok(big.inPlace)
  assert.equal([big.capacity, big.lengths], [7, [3, 1]])
  assert.is(at(big, 1, 0, 1, 2, 1), at(c, 1, 0, 1, 2, 1))
  assert.is(at(big, 0, 1, 0, 0, 0), at(c, 0, 1, 0, 0, 0))
  assert.is(at(big, 0, 1, 0, 1, 0), 0)
  const moved = big.advanced([4, 2])
  assert.is(moved.keys, big.keys)
  assert.equal(moved.lengths, [4, 2])
  const fresh = KvCache.allocate(config, 3, 5)
  assert.equal([fresh.inPlace, fresh.lengths, fresh.keys[0]!.length], [true, [0, 0, 0], 3 * 2 * 5 * 2])
  assert.throws(() => c.withCapacity(2), /below a row's length/)
  assert.throws(() => KvCache.allocate(config, 1, 0), /capacity must be a positive integer/)
})

test('layouts that do not match are range errors', () => {
  assert.throws(() => KvCache.of(config, [1], 2, [new Float32Array(3), new Float32Array(8)], [new Float32Array(8), new Float32Array(8)]), /holds 3 values/)
  assert.throws(() => KvCache.of(config, [3], 2, [new Float32Array(8), new Float32Array(8)], [new Float32Array(8), new Float32Array(8)]), /exceeds the capacity/)
  assert.throws(() => KvCache.concat([KvCache.empty(config, 1), KvCache.empty({...config, headDim: 4}, 1)]), /different models/)
  assert.throws(() => labelled([1], 1, 0).take([1]), /row 1 of 1/)
})

test.run()
