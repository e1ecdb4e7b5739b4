/**
 * The end-to-end benchmark on onnxruntime's WebGPU provider (lavapipe on
 * machines without a GPU: scripts/install-vulkan.sh): every strategy's
 * tokens equal the reference's, and the reference decoded on WebGPU equals
 * the one decoded on the CPU (near ties allowed). Skipped, with the reason
 * printed, where no WebGPU adapter initializes.
 */
import {suite} from 'uvu'
import * as assert from 'uvu/assert'
import {adaptedModules} from '../../../src/core/e2e/adapter-set.js'
import {costTimer} from '../../../src/core/e2e/batch-engine.js'
import {checkTokens} from '../../../src/core/e2e/check-tokens.js'
import {referenceTokens} from '../../../src/core/e2e/reference-tokens.js'
import {drawRequests} from '../../../src/core/e2e/requests.js'
import {runE2e} from '../../../src/core/e2e/run-e2e.js'
import {E2E_DEFAULT_STRATEGIES} from '../../../src/core/e2e/strategies.js'
import {syntheticAdapters} from '../../../src/core/e2e/synthetic-adapters.js'
import {syntheticDecoderWeights} from '../../../src/core/e2e/synthetic-decoder.js'
import {probeProvider} from '../../../src/core/onnx/session.js'
import {skipIf} from '../../helpers/index.js'

const probe = await probeProvider('webgpu')
const test = suite('e2e/webgpu')
const gpu = skipIf(test, probe.ok ? undefined : `no WebGPU adapter: ${probe.reason} (scripts/install-vulkan.sh installs lavapipe)`)
const dims = {hidden: 64, intermediate: 128, layers: 2, vocab: 256, heads: 4, kvHeads: 2}
const timer = costTimer((c) => (c.kind === 'prefill' ? 10 : 2))

gpu('webgpu: every strategy generates the reference tokens', async () => {
  const report = await runE2e({dims, baseDtype: 'f32', adapters: [8], rank: 4, targets: ['q_proj', 'k_proj', 'v_proj', 'o_proj'], sharedK: 4, requests: 6, promptTokens: 5, genTokens: 6, workload: {kind: 'distinct'}, baseFraction: 0, arrival: {kind: 'offline'}, maxBatch: 4, ep: 'webgpu', threads: 2, mergedCache: 2, seed: 1, timer})
  assert.is(report.config.ep, 'webgpu')
  assert.equal(report.results.map((r) => r.strategy), [...E2E_DEFAULT_STRATEGIES])
  for (const r of report.results) assert.ok(r.tokens_equal, `${r.strategy}: ${JSON.stringify(r.mismatches)}`)
})

gpu('webgpu: the reference decoded on WebGPU equals the one decoded on the CPU', async () => {
  const weights = syntheticDecoderWeights(dims, 1)
  const adapters = syntheticAdapters({count: 8, rank: 4, sharedK: 4, modules: adaptedModules(weights.config, ['q_proj', 'v_proj'], 4), seed: 1})
  const requests = drawRequests({requests: 6, promptTokens: 5, genTokens: 6, adapters: adapters.adapters, workload: {kind: 'uniform'}, arrival: {kind: 'offline'}, vocab: 256, seed: 2})
  const run = (ep: 'cpu' | 'webgpu') => referenceTokens({ctx: {weights, adapters, ep, threads: 2, maxPositions: 11, mergedCache: 1, externalData: false}, requests, forms: new Set(['stacks'] as const), maxBatch: 4})
  const cpu = (await run('cpu')).get('stacks')!
  const webgpu = (await run('webgpu')).get('stacks')!
  const records = requests.map((r) => ({id: r.id, adapter: r.adapter, arrivalMs: 0, promptTokens: 5, tokens: webgpu.get(r.id)!.tokens, times: []}))
  const check = checkTokens(records, cpu)
  assert.ok(check.equal, JSON.stringify(check.mismatches))
})

test.run()
