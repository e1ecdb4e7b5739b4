import {suite} from 'uvu'
import * as assert from 'uvu/assert'
import {GraphExecutor} from '../../../src/core/serve/executors.js'
import {compareRows, referenceRows} from '../../../src/core/serve/reference.js'
import type {Executor} from '../../../src/core/serve/strategy.js'
import {prepareWeightSet} from '../../../src/core/serve/weights/weight-set.js'
import {probeProvider, resolveProvider} from '../../../src/core/onnx/session.js'
import {Rng} from '../../../src/core/random.js'
import {skipIf, tempDir} from '../../helpers/index.js'

const test = suite('onnx sessions and providers')
const cuda = await probeProvider('cuda')
const webgpu = await probeProvider('webgpu')

test('auto resolves to a provider that initializes, and says so', async () => {
  const r = await resolveProvider('auto')
  assert.ok(['cpu', 'webgpu', 'cuda'].includes(r.ep))
  assert.match(r.detail, /\(auto/)
  assert.ok((await probeProvider(r.ep)).ok)
})

skipIf(test, cuda.ok ? 'cuda initializes on this machine, so there is no unavailable provider to refuse' : undefined)('an unavailable provider (cuda without its libraries) is refused with its reason', async () => {
  assert.ok(cuda.reason && cuda.reason.length > 0)
  try {
    await resolveProvider('cuda')
    assert.unreachable('should refuse')
  } catch (error) {
    assert.match((error as Error).message, /^--ep cuda: the provider does not initialize: /)
  }
})

skipIf(test, webgpu.ok ? undefined : `${webgpu.reason} (run scripts/install-vulkan.sh for lavapipe)`)('webgpu: gather, segment, shared-b and mask equal the float64 reference', async () => {
  const tmp = tempDir()
  const executors: Executor[] = []
  try {
    const set = await prepareWeightSet(
      {dims: {model: 'llama', hidden: 32, intermediate: 48, layers: 1, targets: ['q_proj', 'k_proj', 'v_proj', 'o_proj', 'down_proj']}, adapters: 6, ranks: [2, 4], sharedK: 3, fuse: true, seed: 2, include: {stacks: true, shared: true}},
      {workDir: tmp.path},
    )
    const rng = new Rng(1, 'x')
    for (const tokens of [1, 2]) {
      const x = Float32Array.from({length: 4 * tokens * 32}, () => rng.next() * 2 - 1)
      const step = {slots: Int32Array.from([3, 0, 6, 3])}
      const rows = Array.from({length: 4 * tokens}, (_, i) => i)
      for (const strategy of ['base', 'gather', 'segment', 'shared-b', 'mask'] as const) {
        const e = await GraphExecutor.create(set, strategy, {ep: 'webgpu', tokens})
        executors.push(e)
        const y = await e.run(step, x)
        const kind = strategy === 'base' ? 'base' : strategy === 'shared-b' ? 'shared' : 'stacks'
        const {maxAbsError, maxAbsRef} = compareRows(y, 32, rows, await referenceRows({set, kind, step, tokens, x, rows}))
        assert.ok(maxAbsError / maxAbsRef < 1e-3, `webgpu ${strategy} T=${tokens}: ${maxAbsError / maxAbsRef}`)
      }
    }
  } finally {
    for (const e of executors) await e.close()
    tmp.cleanup()
  }
})

test.run()
