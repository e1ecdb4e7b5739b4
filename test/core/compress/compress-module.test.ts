import {suite} from 'uvu'
import * as assert from 'uvu/assert'
import {compressModule, maxOf, sweepModule} from '../../../src/core/compress/compress-module.js'
import {moduleSourceFromInput} from '../../../src/core/compress/module-source.js'
import {bytesAfter, bytesBefore, rankForSavings, savingsPercent, sweepRanks, validateSelection} from '../../../src/core/compress/rank-selection.js'
import {MatMulEngine} from '../../../src/core/linalg/matmul-engine.js'
import {syntheticModule} from '../../helpers/compress-fixtures.js'
import {rejection} from '../../helpers/index.js'

const test = suite('compress compress-module')
const engine = new MatMulEngine(2)

const module = syntheticModule({in: 40, out: 24, ranks: [4, 4, 8, 4, 4, 8, 4, 4], sharedSubspace: 0.7, seed: 21})
const S = module.adapters.length + 1
const options = {engine, dtype: 'F16' as const, inputBytesPerElement: 2, slots: S}

test('bytes: a hand-worked module', () => {
  const shape = {name: 'm', in: 40, out: 24, R: 8, rankSum: 40, slots: 9}
  assert.is(bytesBefore(shape, 2), 9 * 8 * (40 + 24) * 2) // 9216
  assert.is(bytesAfter(shape, 3, 2), 3 * (9 * 40 + 24) * 2) // 2304
  assert.is(savingsPercent(9216, 2304), 75)
  // largest K saving ≥ 75%: K = 3 (75%), K = 4 saves 66.7%
  assert.is(rankForSavings(shape, 75, 2, 2), 3)
  assert.is(rankForSavings(shape, 99, 2, 2), 0)
  // saving ≥ 0 %: K·(9·40 + 24)·2 ≤ 9216 → K ≤ 12
  assert.is(rankForSavings(shape, 0, 2, 2), 12)
  // sweep: 1, 2, 4, 8 save; 16 saves nothing: stop there
  assert.equal(sweepRanks([shape], 2, 2), [1, 2, 4, 8, 16])
})

test('--rank K: the same K, with errors and bytes as reported', async () => {
  const c = await compressModule(moduleSourceFromInput(module), {rank: 6}, options)
  assert.is(c.K, 6)
  assert.is(c.errors.length, module.adapters.length)
  assert.is(c.bytesAfter, 6 * (S * 40 + 24) * 2)
  assert.is(c.sharedB.byteLength, 24 * 6 * 2)
})

test('--rank larger than Σr is clamped to Σr; larger than out is refused', async () => {
  const small = syntheticModule({in: 40, out: 24, ranks: [2, 3], sharedSubspace: 0.5})
  const c = await compressModule(moduleSourceFromInput(small), {rank: 20}, {...options, slots: 3})
  assert.is(c.K, 5)
  const error = await rejection(compressModule(moduleSourceFromInput(module), {rank: 25}, options))
  assert.is(error.code, 'COMPRESS_RANK_TOO_LARGE')
  assert.match(error.message, /out = 24/)
})

test('--max-error E picks the smallest K whose measured max error is ≤ E', async () => {
  for (const e of [0.5, 0.2, 0.05]) {
    const c = await compressModule(moduleSourceFromInput(module), {maxError: e}, options)
    assert.ok(maxOf(c.errors) <= e, `E=${e}: max ${maxOf(c.errors)} at K=${c.K}`)
    if (c.K > 1) {
      const below = await compressModule(moduleSourceFromInput(module), {rank: c.K - 1}, options)
      assert.ok(maxOf(below.errors) > e, `E=${e}: K-1=${c.K - 1} would already do`)
    }
  }
})

test('--max-error retries with a larger K after rounding, and restarts the sink', async () => {
  let restarts = 0
  const written: number[] = []
  const c = await compressModule(moduleSourceFromInput(module), {maxError: 0.01}, {
    ...options,
    dtype: 'F32',
    sink: {
      async restart() {
        restarts++
        written.length = 0
      },
      async write(start, count) {
        for (let t = 0; t < count; t++) written.push(start + t)
      },
    },
  })
  assert.ok(maxOf(c.errors) <= 0.01)
  assert.ok(restarts >= 1)
  assert.equal(written, module.adapters.map((_, i) => i), 'after the last restart every adapter is written once')
})

test('--max-error below the dtype\'s rounding is refused with a clear message', async () => {
  const error = await rejection(compressModule(moduleSourceFromInput(module), {maxError: 1e-6}, {...options, dtype: 'BF16'}))
  assert.is(error.code, 'COMPRESS_MAX_ERROR_UNREACHABLE')
  assert.match(error.message, /cannot be met on module .* stored as BF16: even K = 24/)
})

test('--savings PCT picks the largest K that still saves PCT', async () => {
  const before = bytesBefore({name: '', in: 40, out: 24, R: 8, rankSum: 40, slots: S}, 2)
  for (const pct of [50, 80]) {
    const c = await compressModule(moduleSourceFromInput(module), {savings: pct}, options)
    assert.ok(savingsPercent(before, c.bytesAfter) >= pct)
    const next = (c.K + 1) * (S * 40 + 24) * 2
    assert.ok(savingsPercent(before, next) < pct)
  }
  const error = await rejection(compressModule(moduleSourceFromInput(module), {savings: 99.9}, options))
  assert.is(error.code, 'COMPRESS_SAVINGS_UNREACHABLE')
})

test('a sweep point has exactly the errors `--rank K` measures', async () => {
  const sweep = await sweepModule(moduleSourceFromInput(module), [2, 4, 8], options)
  for (const p of sweep.points) {
    const c = await compressModule(moduleSourceFromInput(module), {rank: p.K}, options)
    assert.equal(Array.from(p.errors), Array.from(c.errors))
    assert.is(p.bytesAfter, c.bytesAfter)
  }
  for (let j = 1; j < sweep.points.length; j++) assert.ok(maxOf(sweep.points[j]!.errors) <= maxOf(sweep.points[j - 1]!.errors) + 1e-9)
})

test('selections out of range are refused before any work', () => {
  for (const [selection, code] of [
    [{rank: 0}, 'COMPRESS_BAD_RANK'],
    [{rank: -3}, 'COMPRESS_BAD_RANK'],
    [{rank: 2.5}, 'COMPRESS_BAD_RANK'],
    [{maxError: 0}, 'COMPRESS_BAD_MAX_ERROR'],
    [{maxError: 1}, 'COMPRESS_BAD_MAX_ERROR'],
    [{maxError: -0.1}, 'COMPRESS_BAD_MAX_ERROR'],
    [{maxError: NaN}, 'COMPRESS_BAD_MAX_ERROR'],
    [{savings: 100}, 'COMPRESS_BAD_SAVINGS'],
    [{savings: -1}, 'COMPRESS_BAD_SAVINGS'],
  ] as const) {
    try {
      validateSelection(selection)
      assert.unreachable(`${JSON.stringify(selection)} was accepted`)
    } catch (error) {
      assert.is((error as {code?: string}).code, code)
    }
  }
})

test.after(async () => {
  await engine.release()
})

test.run()
