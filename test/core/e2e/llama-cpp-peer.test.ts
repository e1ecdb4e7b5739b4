/**
 * The llama.cpp peer of `lora bench --e2e` (node-llama-cpp 3.21.1), on a fake
 * clock: on stories260K (llama.cpp's own GGUF, its two real adapters packed and
 * exported by `lora export`) and on a small synthetic Llama (its GGUF written
 * by lora with a tokenizer, at f32 and q4), `llama.cpp` (a batch per adapter)
 * and `llama.cpp-base` (no adapters) generate the reference's tokens, near
 * ties accounted at the peer's tolerance, with every figure present. Slots are
 * reused (more requests than the batch holds). The check can fail: each
 * request served with another request's adapter file is a mismatch naming
 * the request. Where node-llama-cpp is absent
 * the tests skip with the reason (LORA_REQUIRE_ENGINES=1 makes that a failure).
 */
import {join} from 'node:path'
import {adaptedModules} from '../../../src/core/e2e/adapter-set.js'
import {checkTokens} from '../../../src/core/e2e/check-tokens.js'
import {LlamaCppEngine, llamaCppKvBytesPerToken} from '../../../src/core/e2e/llama-cpp-engine.js'
import {exportPeerAdapters, writePeerModel} from '../../../src/core/e2e/llama-cpp-files.js'
import {referenceTokens} from '../../../src/core/e2e/reference-tokens.js'
import {drawRequests} from '../../../src/core/e2e/requests.js'
import {Scheduler} from '../../../src/core/e2e/scheduler.js'
import {syntheticAdapters} from '../../../src/core/e2e/synthetic-adapters.js'
import {syntheticDecoderWeights} from '../../../src/core/e2e/synthetic-decoder.js'
import {LlamaCppModel} from '../../../src/core/engines/llama-cpp-batch.js'
import {suite} from 'uvu'
import * as assert from 'uvu/assert'
import {costTimer} from '../../../src/core/e2e/batch-engine.js'
import type {E2eReport, E2eResult} from '../../../src/core/e2e/e2e-report.js'
import {llamaCppTieTolerance} from '../../../src/core/e2e/llama-cpp-tolerance.js'
import {E2eOptions, runE2e} from '../../../src/core/e2e/run-e2e.js'
import {packAdapters} from '../../../src/core/pack/pack-adapters.js'
import {ENGINES_DIR, STORIES, llamaCppMissing} from '../../helpers/llama-engine.js'
import {rejection, skipIf, tempDir} from '../../helpers/index.js'

const test = suite('e2e/llama-cpp-peer')
const tmp = tempDir('lora-e2e-peer-')
test.after(() => tmp.cleanup())

/** Prefill 20 ms + 0.1 per token, decode 5 ms + 0.2 per row: a fake clock (no test measures wall time). */
const timer = costTimer((c) => (c.kind === 'prefill' ? 20 + 0.1 * c.tokens : 5 + 0.2 * c.rows))

const SMALL: E2eOptions = {
  // vocab 400: room for the SentencePiece-style tokenizer llama.cpp needs in the GGUF
  dims: {hidden: 64, intermediate: 128, layers: 2, vocab: 400, heads: 2, kvHeads: 1},
  baseDtype: 'f32',
  adapters: [10],
  rank: 4,
  targets: ['q_proj', 'k_proj', 'v_proj', 'o_proj'],
  sharedK: 4,
  requests: 6,
  promptTokens: 6,
  genTokens: 7,
  workload: {kind: 'distinct'},
  baseFraction: 0,
  arrival: {kind: 'offline'},
  maxBatch: 3,
  ep: 'cpu',
  // one thread: llama.cpp's workers spin-wait, and two of them stall each other on a loaded machine
  threads: 1,
  mergedCache: 1,
  seed: 4,
  strategies: ['llama.cpp'],
  engineDir: ENGINES_DIR,
  timer,
}

/** Every figure a row reports is there and hangs together; its tokens equal the reference's, near ties accounted. */
function assertPeerRow(report: E2eReport, r: E2eResult, generated: number): void {
  assert.ok(r.tokens_equal, `${r.strategy}: ${JSON.stringify(r.mismatches)}`)
  assert.is(r.exact_requests + r.near_ties, r.requests, r.strategy)
  assert.is(r.tie_tolerance, llamaCppTieTolerance(report.config.model.base_dtype as 'f32', report.config.tie_tolerance))
  assert.is(r.generated_tokens, generated)
  assert.ok(r.tokens_per_s.prefill > 0 && r.tokens_per_s.decode > 0 && r.tokens_per_s.total > 0, r.strategy)
  assert.ok(r.ttft_ms.p99 >= r.ttft_ms.p50 && r.ttft_ms.p50 > 0 && r.itl_ms.p99 >= r.itl_ms.p50 && r.itl_ms.p50 > 0, r.strategy)
  assert.ok(Number.isFinite(r.relative_to_base.decode_tokens_per_s) && Number.isFinite(r.relative_to_base.itl_p99), r.strategy)
  assert.ok(r.memory.kv_cache_bytes_peak > 0 && r.peak_batch <= report.config.scheduler.max_batch, r.strategy)
}

const engine = skipIf(test, llamaCppMissing(false))

engine('a synthetic Llama: llama.cpp serves one adapter per batch, llama.cpp-base all requests together, tokens as the reference\'s', async () => {
  const notes: string[] = []
  const report = await runE2e({...SMALL, onNote: (l) => notes.push(l)})
  assert.equal(report.results.map((r) => [r.strategy, r.policy]), [
    ['base', 'mixed'],
    ['llama.cpp', 'per-adapter'],
    ['llama.cpp-base', 'mixed'],
  ])
  const [, peer, alone] = report.results as [E2eResult, E2eResult, E2eResult]
  for (const r of [peer, alone]) assertPeerRow(report, r, 6 * 7)
  // six distinct adapters, one batch each: one row per decode call, the adapter set switched for each group
  assert.is(peer.mean_decode_batch, 1)
  assert.is(peer.stats!.adapter_switches, 6)
  assert.ok(peer.memory.adapter_bytes > 0)
  assert.ok(alone.mean_decode_batch > 1)
  assert.is(alone.memory.adapter_bytes, 0)
  assert.is(alone.stats, null)
  assert.ok(report.tokens_equal)
  assert.match(notes.join('\n'), /llama\.cpp: the model written as a F32 GGUF/)
  assert.match(notes.join('\n'), /llama\.cpp: 6 adapters exported as F16 GGUF LoRA adapters by lora export .* of the 10 loaded/)
})

engine('a synthetic Llama with a 4-bit base: the Q4_0 GGUF\'s tokens checked at the Q8_0 tolerance', async () => {
  const report = await runE2e({...SMALL, baseDtype: 'q4', workload: {kind: 'zipf', alpha: 1.1}, klRequests: 0})
  for (const r of report.results.slice(1)) assertPeerRow(report, r, 6 * 7)
  assert.ok(report.results[1]!.tie_tolerance > report.config.tie_tolerance)
})

engine('the check fails a peer that serves each request with another request\'s adapter, naming the request', async () => {
  const weights = syntheticDecoderWeights(SMALL.dims, 4)
  const adapters = syntheticAdapters({count: 10, rank: 4, sharedK: 4, modules: adaptedModules(weights.config, SMALL.targets, 4), seed: 4})
  const requests = drawRequests({requests: 6, promptTokens: 6, genTokens: 12, adapters: adapters.adapters, workload: {kind: 'distinct'}, arrival: {kind: 'offline'}, vocab: 400, seed: 4, baseFraction: 0})
  const ctx = {weights, adapters, ep: 'cpu' as const, threads: 1, maxPositions: 18, mergedCache: 1, externalData: false}
  const reference = (await referenceTokens({ctx, requests, forms: new Set(['stacks'] as const), maxBatch: 3})).get('stacks')!
  const dir = join(tmp.path, 'wrong')
  const files = {dir, weights, baseDtype: 'f32' as const, adapters}
  const model = await writePeerModel(files)
  const names = requests.map((r) => r.adapter!)
  const exported = await exportPeerAdapters(files, model.path, names)
  const llama = await LlamaCppModel.open({model: model.path, threads: 1, searchFrom: [ENGINES_DIR]})
  try {
    const batch = await llama.createBatch({sequences: 3, contextSize: 18, batchSize: 512})
    const another = (a: string | null) => exported.files.get(names[(names.indexOf(a!) + 1) % names.length]!)!
    const engine = new LlamaCppEngine(batch, another, llamaCppKvBytesPerToken(weights.config))
    const trace = await new Scheduler({engine, requests, maxBatch: 3, kvBytesPerToken: 1, policy: 'per-adapter', timer}).run()
    await batch.close()
    const check = checkTokens(trace.requests, reference, llamaCppTieTolerance('f32', 1e-4))
    assert.is(check.equal, false)
    assert.ok(check.mismatches.length >= 2, JSON.stringify(check))
    for (const m of check.mismatches) assert.is(m.adapter, requests.find((r) => r.id === m.request)!.adapter)
  } finally {
    await llama.close()
  }
})

engine('refusal: a synthetic vocabulary too small for the tokenizer llama.cpp needs', async () => {
  const error = await rejection(runE2e({...SMALL, dims: {...SMALL.dims, vocab: 300}}))
  assert.is(error.code, 'BAD_FLAG')
  assert.match(error.message, /--strategies llama\.cpp: llama\.cpp needs a tokenizer in the GGUF, and a synthetic vocabulary of 300 tokens is below the \d+/)
})

const real = skipIf(test, llamaCppMissing(true))
real('stories260K: its GGUF and its two real adapters, exported from a pack by lora export, give the reference\'s tokens', async () => {
  const pack = join(tmp.path, 'stories.safetensors')
  await packAdapters({inputs: ['lora_small', 'lora_medium'].map((a) => join(STORIES, 'adapters', a)), out: pack})
  const report = await runE2e({...SMALL, model: join(STORIES, 'gguf/stories260K.gguf'), pack, workload: {kind: 'uniform'}, baseFraction: 0.25, requests: 8, genTokens: 12})
  assert.equal(report.results.map((r) => r.strategy), ['base', 'llama.cpp', 'llama.cpp-base'])
  for (const r of report.results.slice(1)) assertPeerRow(report, r, 8 * 12)
  assert.is(report.config.model.vocab, 512)
  assert.is(report.config.adapters.counts[0], 2)
  assert.ok(report.results[1]!.stats!.adapter_switches >= 2)
})

test.run()
