import {suite} from 'uvu'
import * as assert from 'uvu/assert'
import {GraphExecutor, createExecutor} from '../../../src/core/serve/executors.js'
import {STRATEGIES, strategyOf} from '../../../src/core/serve/registry.js'
import {MergedExecutor} from '../../../src/core/serve/merged-executor.js'
import {compareRows, referenceRows} from '../../../src/core/serve/reference.js'
import type {RoutingStep} from '../../../src/core/serve/routing.js'
import type {Executor, ReferenceKind} from '../../../src/core/serve/strategy.js'
import {WeightSet, prepareWeightSet} from '../../../src/core/serve/weights/weight-set.js'
import {Workload, drawSteps} from '../../../src/core/bench/workload.js'
import {ALL_PROJECTIONS} from '../../../src/core/models/llama.js'
import {BenchModelKind} from '../../../src/core/serve/lora-layout.js'
import {Rng} from '../../../src/core/random.js'
import {tempDir} from '../../helpers/index.js'

const test = suite('routed LoRA graphs')

const WORKLOADS: Workload[] = [{kind: 'distinct'}, {kind: 'uniform'}, {kind: 'zipf', alpha: 1.1}, {kind: 'identical'}]
const TOLERANCE = 1e-4
const BATCH = 5

async function buildSet(dir: string, model: BenchModelKind, ranks: number[], fuse = true, stackDtype?: 'f16'): Promise<WeightSet> {
  return prepareWeightSet(
    {
      dims: {model, hidden: 24, intermediate: 40, layers: 2, targets: [...ALL_PROJECTIONS]},
      adapters: 7,
      ranks,
      sharedK: 3,
      fuse,
      seed: 5,
      include: {stacks: true, shared: true},
      ...(stackDtype ? {stackDtype} : {}),
    },
    {workDir: dir},
  )
}

function input(rows: number, hidden: number): Float32Array {
  const rng = new Rng(9, 'x')
  return Float32Array.from({length: rows * hidden}, () => rng.next() * 2 - 1)
}

/** One executor per strategy of the table, in table order (merged holds 2 copies). */
async function executorsFor(set: WeightSet, tokens: number): Promise<Executor[]> {
  const executors: Executor[] = []
  for (const s of STRATEGIES) executors.push(await createExecutor(set, s, {ep: 'cpu', threads: 1, tokens, batch: BATCH, mergedCache: 2}))
  return executors
}

function kindOf(strategy: string): ReferenceKind {
  return strategyOf(strategy).reference
}

/** Relative error of every row of `y` against the float64 reference. */
async function relativeError(set: WeightSet, kind: ReferenceKind, step: RoutingStep, tokens: number, x: Float32Array, y: Float32Array): Promise<number> {
  const rows = Array.from({length: step.slots.length * tokens}, (_, i) => i)
  const ref = await referenceRows({set, kind, step, tokens, x, rows})
  const {maxAbsError, maxAbsRef} = compareRows(y, set.spec.dims.hidden, rows, ref)
  return maxAbsError / maxAbsRef
}

for (const model of ['llama', 'layer'] as const) {
  for (const tokens of [1, 3]) {
    test(`${model}, ${tokens === 1 ? 'decode' : `prefill T=${tokens}`}: every strategy equals the float64 reference for every workload, with base-fraction requests and ranks 2/4 padded to 4`, async () => {
      const tmp = tempDir()
      const executors: Executor[] = []
      try {
        const set = await buildSet(tmp.path, model, [2, 4])
        executors.push(...(await executorsFor(set, tokens)))
        const x = input(BATCH * tokens, set.spec.dims.hidden)
        for (const workload of WORKLOADS) {
          const steps = drawSteps({workload, adapters: 7, batch: BATCH, baseFraction: 0.4, seed: 3, steps: 2})
          for (const step of steps) {
            assert.is(Array.from(step.slots).filter((s) => s === 0).length, 2, 'two of five requests have no adapter')
            for (const e of executors) {
              const y = await e.run(step, x)
              const err = await relativeError(set, kindOf(e.strategy), step, tokens, x, y)
              assert.ok(err < TOLERANCE, `${e.strategy} ${workload.kind}: relative error ${err}`)
            }
          }
        }
      } finally {
        for (const e of executors) await e.close()
        tmp.cleanup()
      }
    })
  }
}

for (const tokens of [1, 3]) {
  test(`f16 stacks, ${tokens === 1 ? 'decode (chunked gathers)' : `prefill T=${tokens}`}: every strategy equals the float64 reference of the f16-rounded weights, with base-fraction requests and ranks 2/4 padded to 4`, async () => {
    const tmp = tempDir()
    const executors: Executor[] = []
    try {
      const set = await buildSet(tmp.path, 'llama', [2, 4], true, 'f16')
      assert.is(set.stackDtype, 'f16')
      executors.push(...(await executorsFor(set, tokens)))
      const x = input(BATCH * tokens, set.spec.dims.hidden)
      for (const workload of [WORKLOADS[0]!, WORKLOADS[2]!]) {
        const [step] = drawSteps({workload, adapters: 7, batch: BATCH, baseFraction: 0.4, seed: 3, steps: 1})
        for (const e of executors) {
          const err = await relativeError(set, kindOf(e.strategy), step!, tokens, x, await e.run(step!, x))
          assert.ok(err < TOLERANCE, `${e.strategy} ${workload.kind}: relative error ${err}`)
        }
      }
    } finally {
      for (const e of executors) await e.close()
      tmp.cleanup()
    }
  })
}

test('the check can fail: adapter outputs differ from the base reference, and stacks from shared-B', async () => {
  const tmp = tempDir()
  const executors: Executor[] = []
  try {
    const set = await buildSet(tmp.path, 'llama', [4])
    executors.push(...(await executorsFor(set, 1)))
    const x = input(BATCH, set.spec.dims.hidden)
    const step: RoutingStep = {slots: Int32Array.from([1, 2, 3, 4, 5])}
    const gather = await executors.find((e) => e.strategy === 'gather')!.run(step, x)
    assert.ok((await relativeError(set, 'base', step, 1, x, gather)) > 1e-3)
    assert.ok((await relativeError(set, 'shared', step, 1, x, gather)) > 1e-3)
  } finally {
    for (const e of executors) await e.close()
    tmp.cleanup()
  }
})

test('mask serves weighted mixtures of adapters per request', async () => {
  const tmp = tempDir()
  let mask: Executor | undefined
  try {
    const set = await buildSet(tmp.path, 'llama', [4])
    mask = await GraphExecutor.create(set, 'mask', {ep: 'cpu', threads: 1, tokens: 2})
    const x = input(3 * 2, set.spec.dims.hidden)
    const step: RoutingStep = {
      slots: Int32Array.from([1, 0, 2]),
      mixtures: [
        [{slot: 1, weight: 0.25}, {slot: 6, weight: 0.75}],
        [{slot: 0, weight: 1}],
        [{slot: 2, weight: 0.5}, {slot: 3, weight: 0.5}, {slot: 7, weight: -0.2}],
      ],
    }
    const y = await mask.run(step, x)
    assert.ok((await relativeError(set, 'stacks', step, 2, x, y)) < TOLERANCE)
    // and it is not the one-hot answer
    assert.ok((await relativeError(set, 'stacks', {slots: step.slots}, 2, x, y)) > 1e-3)
  } finally {
    await mask?.close()
    tmp.cleanup()
  }
})

test('unfused layout (one group per projection) gives the same answers', async () => {
  const tmp = tempDir()
  const executors: Executor[] = []
  try {
    const set = await buildSet(tmp.path, 'llama', [3], false)
    assert.is(set.groups.length, 14)
    const options = {ep: 'cpu' as const, threads: 1, tokens: 1}
    executors.push(await GraphExecutor.create(set, 'gather', options), await GraphExecutor.create(set, 'shared-b', options))
    const x = input(BATCH, set.spec.dims.hidden)
    const step: RoutingStep = {slots: Int32Array.from([7, 0, 3, 3, 1])}
    assert.ok((await relativeError(set, 'stacks', step, 1, x, await executors[0]!.run(step, x))) < TOLERANCE)
    assert.ok((await relativeError(set, 'shared', step, 1, x, await executors[1]!.run(step, x))) < TOLERANCE)
  } finally {
    for (const e of executors) await e.close()
    tmp.cleanup()
  }
})

test('merged keeps at most C merged copies and merges the others on demand', async () => {
  const tmp = tempDir()
  let merged: MergedExecutor | undefined
  try {
    const set = await buildSet(tmp.path, 'layer', [4])
    merged = await MergedExecutor.create(set, 2, {ep: 'cpu', threads: 1, tokens: 1})
    const x = input(4, set.spec.dims.hidden)
    await merged.run({slots: Int32Array.from([1, 2, 1, 0])}, x)
    assert.equal(merged.stats, {merges: 2, hits: 0, switches: 3})
    await merged.run({slots: Int32Array.from([2, 3, 3, 3])}, x)
    assert.equal(merged.stats, {merges: 3, hits: 1, switches: 5})
    // 1 was evicted (least recently used) when 3 came in
    await merged.run({slots: Int32Array.from([1, 1, 1, 1])}, x)
    assert.equal(merged.stats, {merges: 4, hits: 1, switches: 6})
  } finally {
    await merged?.close()
    tmp.cleanup()
  }
})

test.run()
