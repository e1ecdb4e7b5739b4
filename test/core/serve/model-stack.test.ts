import {spawnSync} from 'node:child_process'
import {suite} from 'uvu'
import * as assert from 'uvu/assert'
import {readFileSync} from 'node:fs'
import {GraphExecutor} from '../../../src/core/serve/executors.js'
import {MergedExecutor} from '../../../src/core/serve/merged-executor.js'
import {compareRows, referenceRows} from '../../../src/core/serve/reference.js'
import {prepareWeightSet} from '../../../src/core/serve/weights/weight-set.js'
import {buildStackModel} from '../../../src/core/serve/model-stack.js'
import {GRAPH_STRATEGIES, strategyOf} from '../../../src/core/serve/registry.js'
import {createSession} from '../../../src/core/onnx/session.js'
import {Rng} from '../../../src/core/random.js'
import {skipIf, tempDir} from '../../helpers/index.js'

const test = suite('model stacks')

const spec = (model: 'llama' | 'layer', fuse: boolean) => ({
  dims: {model, hidden: 16, intermediate: 24, layers: 2, targets: ['q_proj', 'k_proj', 'o_proj', 'up_proj', 'down_proj'] as const},
  adapters: 4,
  ranks: [2, 3],
  sharedK: 2,
  fuse,
  seed: 8,
  include: {stacks: true, shared: true},
})

test('every graph the builder makes loads in an ORT session: each strategy × model × fused/unfused × product form, and the merged pair', async () => {
  const tmp = tempDir()
  try {
    let count = 0
    for (const model of ['llama', 'layer'] as const) {
      for (const fuse of [true, false]) {
        const set = await prepareWeightSet({...spec(model, fuse), dims: {...spec(model, fuse).dims, targets: [...spec(model, fuse).dims.targets]}}, {workDir: tmp.path})
        for (const strategy of GRAPH_STRATEGIES) {
          for (const form of ['gemv', 'gemm'] as const) {
            const built = buildStackModel(set, {strategy: strategyOf(strategy), tokens: 2, form, fileName: `m-${strategy}-${form}.onnx`})
            const session = await createSession(built.path, {ep: 'cpu', threads: 1})
            assert.equal([...session.inputNames].sort(), [...built.inputs, ...(strategy === 'base' ? [] : strategy === 'segment' ? ['seg_rows', 'seg_slots', 'unperm'] : strategy === 'mask' ? ['mask'] : ['slots'])].sort())
            await session.release()
            count++
          }
        }
        const merged = buildStackModel(set, {tokens: 1, weightInputs: true, fileName: 'merged.onnx'})
        const session = await createSession(merged.path, {ep: 'cpu', threads: 1})
        assert.is(session.inputNames.length, 1 + set.modules.filter((m) => m.targeted).length)
        await session.release()
        count++
      }
    }
    assert.is(count, 2 * 2 * (GRAPH_STRATEGIES.length * 2 + 1))
  } finally {
    tmp.cleanup()
  }
})

test('with f16 stacks every graph loads too (each strategy × model × product form, chunked decode, the merged pair), and casts each gathered stack to f32', async () => {
  const tmp = tempDir()
  try {
    let count = 0
    for (const model of ['llama', 'layer'] as const) {
      const set = await prepareWeightSet({...spec(model, true), dims: {...spec(model, true).dims, targets: [...spec(model, true).dims.targets]}, stackDtype: 'f16'}, {workDir: tmp.path})
      for (const strategy of GRAPH_STRATEGIES) {
        for (const variant of [{form: 'gemv' as const}, {form: 'gemm' as const}, {form: 'gemv' as const, chunk: {batch: 3, size: 2}}]) {
          const built = buildStackModel(set, {strategy: strategyOf(strategy), tokens: variant.chunk ? 1 : 2, ...variant, fileName: `h-${strategy}-${variant.form}-${variant.chunk ? 'c' : 'w'}.onnx`})
          const text = Buffer.from(readFileSync(built.path)).toString('latin1')
          assert.is(text.includes('Cast'), strategy !== 'base', `${strategy}: a Cast after the f16 stacks`)
          const session = await createSession(built.path, {ep: 'cpu', threads: 1})
          await session.release()
          count++
        }
      }
      const executor = await MergedExecutor.create(set, 1, {ep: 'cpu', threads: 1, tokens: 1})
      await executor.close()
      count++
    }
    assert.is(count, 2 * (GRAPH_STRATEGIES.length * 3 + 1))
  } finally {
    tmp.cleanup()
  }
})

test('both product forms, and chunked decode gathers, give the reference answer', async () => {
  const tmp = tempDir()
  try {
    const set = await prepareWeightSet({...spec('llama', true), dims: {...spec('llama', true).dims, targets: [...spec('llama', true).dims.targets]}}, {workDir: tmp.path})
    const rng = new Rng(4, 'x')
    for (const tokens of [1, 3]) {
      const x = Float32Array.from({length: 3 * tokens * 16}, () => rng.next() * 2 - 1)
      const step = {slots: Int32Array.from([4, 0, 2])}
      const rows = Array.from({length: 3 * tokens}, (_, i) => i)
      for (const strategy of ['gather', 'segment', 'shared-b'] as const) {
        const ref = await referenceRows({set, kind: strategy === 'shared-b' ? 'shared' : 'stacks', step, tokens, x, rows})
        for (const form of ['gemv', 'gemm'] as const) {
          const e = await GraphExecutor.create(set, strategy, {ep: 'cpu', threads: 1, tokens, form, label: `${strategy}-${form}`})
          const {maxAbsError, maxAbsRef} = compareRows(await e.run(step, x), 16, rows, ref)
          await e.close()
          assert.ok(maxAbsError / maxAbsRef < 1e-4, `${strategy} ${form} T=${tokens}`)
        }
        if (tokens === 1 && strategy !== 'segment') {
          // decode requests gathered two at a time (chunks of 2 + 1)
          const e = await GraphExecutor.create(set, strategy, {ep: 'cpu', threads: 1, tokens, chunk: {batch: 3, size: 2}, label: `${strategy}-chunked`})
          const {maxAbsError, maxAbsRef} = compareRows(await e.run(step, x), 16, rows, ref)
          await e.close()
          assert.ok(maxAbsError / maxAbsRef < 1e-4, `${strategy} chunked`)
        }
      }
    }
  } finally {
    tmp.cleanup()
  }
})

const onnxChecker = spawnSync('python3', ['-c', 'import onnx'], {encoding: 'utf8'}).status === 0
skipIf(test, onnxChecker ? undefined : 'python3 has no onnx package (pip install onnx)')('onnx.checker accepts the graphs', async () => {
  const tmp = tempDir()
  try {
    const set = await prepareWeightSet({...spec('llama', true), dims: {...spec('llama', true).dims, targets: [...spec('llama', true).dims.targets]}}, {workDir: tmp.path})
    for (const strategy of GRAPH_STRATEGIES) {
      const built = buildStackModel(set, {strategy: strategyOf(strategy), tokens: 1, fileName: `c-${strategy}.onnx`})
      const r = spawnSync('python3', ['-c', 'import sys, onnx; onnx.checker.check_model(sys.argv[1], full_check=True)', built.path], {encoding: 'utf8'})
      assert.is(r.status, 0, `${strategy}: ${r.stderr}`)
    }
  } finally {
    tmp.cleanup()
  }
})

test.run()
