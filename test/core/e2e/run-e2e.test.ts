/**
 * `runE2e` end to end, on a fake clock: every strategy of the table (base,
 * gather, segment, shared-b, mask, merged) generates the reference's tokens
 * on a small synthetic Llama (f32 and 4-bit bases, offline and Poisson
 * arrivals under a KV budget) and on stories260K with a pack of its real
 * adapters; the report's figures hang together.
 */
import {writeFileSync} from 'node:fs'
import {join} from 'node:path'
import {suite} from 'uvu'
import * as assert from 'uvu/assert'
import {costTimer} from '../../../src/core/e2e/batch-engine.js'
import {E2eOptions, runE2e} from '../../../src/core/e2e/run-e2e.js'
import {E2E_DEFAULT_STRATEGIES} from '../../../src/core/e2e/strategies.js'
import {compressFile} from '../../../src/core/compress/compress-file.js'
import {packAdapters} from '../../../src/core/pack/pack-adapters.js'
import {STORIES, storiesMissing} from '../../helpers/decoder-fixtures.js'
import {rejection, skipIf, tempDir} from '../../helpers/index.js'

const test = suite('e2e/run-e2e')
const tmp = tempDir('lora-e2e-run-')
test.after(() => tmp.cleanup())

/** Prefill 20 ms + 0.1 per token, decode 5 ms + 0.2 per row, 3 ms more per distinct adapter among the rows: a fake clock. */
const timer = costTimer((c) => (c.kind === 'prefill' ? 20 + 0.1 * c.tokens : 5 + 0.2 * c.rows) + 3 * (c.adapters - 1))

const SMALL: E2eOptions = {
  dims: {hidden: 64, intermediate: 128, layers: 2, vocab: 300, heads: 4, kvHeads: 2},
  baseDtype: 'f32',
  adapters: [12],
  rank: 4,
  targets: ['q_proj', 'k_proj', 'v_proj', 'o_proj'],
  sharedK: 4,
  requests: 9,
  promptTokens: 7,
  genTokens: 8,
  workload: {kind: 'distinct'},
  baseFraction: 0,
  arrival: {kind: 'offline'},
  maxBatch: 4,
  ep: 'cpu',
  threads: 2,
  mergedCache: 2,
  seed: 5,
  timer,
}

test('every strategy of the table generates the reference tokens on a synthetic Llama (the peers only when named)', async () => {
  const notes: string[] = []
  const report = await runE2e({...SMALL, onNote: (l) => notes.push(l)})
  assert.equal(report.results.map((r) => r.strategy), [...E2E_DEFAULT_STRATEGIES])
  assert.match(notes.join('\n'), /llama\.cpp, llama\.cpp-base left out: peer engines run when named in --strategies/)
  for (const r of report.results) {
    assert.ok(r.tokens_equal, `${r.strategy}: ${JSON.stringify(r.mismatches)}`)
    assert.is(r.generated_tokens, 9 * 8)
    assert.is(r.requests, 9)
    assert.ok(r.tokens_per_s.decode > 0 && r.ttft_ms.p99 >= r.ttft_ms.p50 && r.itl_ms.p99 >= r.itl_ms.p50, r.strategy)
    assert.ok(r.memory.kv_cache_bytes_peak > 0)
  }
  assert.ok(report.tokens_equal)
  const base = report.results[0]!
  assert.equal(Object.values(base.relative_to_base), [1, 1, 1, 1, 1, 1, 1])
  assert.is(base.memory.adapter_bytes, 0)
  assert.is(base.distinct_adapters, 9)
  const merged = report.results.find((r) => r.strategy === 'merged')!
  assert.is(merged.policy, 'per-adapter')
  assert.is(merged.stats!.merges, 9) // nine distinct adapters, one at a time
  assert.is(merged.mean_decode_batch, 1)
  const gather = report.results.find((r) => r.strategy === 'gather')!
  assert.ok(gather.mean_decode_batch > 1)
  assert.is(report.config.adapters.shared_exact, true)
  assert.is(report.config.kl_to_float, null)
})

test('a 4-bit base with unmerged adapters, Poisson arrivals and a KV budget: tokens equal, KL to the f32 base measured', async () => {
  const perToken = 2 * 2 * 2 * 16 * 4
  const report = await runE2e({...SMALL, baseDtype: 'q4', strategies: ['gather', 'shared-b', 'merged'], arrival: {kind: 'poisson', rate: 30}, kvBudgetBytes: 3 * 15 * perToken, workload: {kind: 'zipf', alpha: 1.1}})
  assert.equal(report.results.map((r) => r.strategy), ['base', 'gather', 'shared-b', 'merged'])
  for (const r of report.results) {
    assert.ok(r.tokens_equal, `${r.strategy}: ${JSON.stringify(r.mismatches)}`)
    assert.ok(r.peak_batch <= 3 && r.memory.kv_reserved_bytes_peak <= 3 * 15 * perToken)
  }
  const kl = report.config.kl_to_float!
  assert.ok(kl.mean > 0 && kl.mean < 1, `KL ${kl.mean}`)
  assert.is(kl.positions, 4 * (7 + 8 - 1))
  assert.is(report.config.workload.arrival, 'poisson')
})

test('a trace of mixed lengths, adapters and arrivals: every strategy generates the reference tokens', async () => {
  const path = join(tmp.path, 'trace.jsonl')
  const lines = [
    {prompt_tokens: 3, max_tokens: 9, adapter: 'adapter-0003', arrival_s: 0},
    {prompt_tokens: [5, 6, 7, 8, 9, 10, 11, 12, 13], max_tokens: 2, adapter: null, arrival_s: 0},
    {prompt_tokens: 6, max_tokens: 5, adapter: 'adapter-0003', arrival_s: 0.01},
    {prompt_tokens: 1, max_tokens: 7, adapter: 'adapter-0010', arrival_s: 0.02, id: 'short'},
    {prompt_tokens: 11, max_tokens: 1, adapter: 'adapter-0000', arrival_s: 0.05},
  ]
  writeFileSync(path, lines.map((l) => JSON.stringify(l)).join('\n'))
  const report = await runE2e({...SMALL, workload: {kind: 'trace', path}, maxBatch: 3})
  assert.is(report.config.workload.kind, 'trace')
  assert.is(report.config.workload.requests, 5)
  for (const r of report.results) {
    assert.ok(r.tokens_equal, `${r.strategy}: ${JSON.stringify(r.mismatches)}`)
    assert.is(r.generated_tokens, 9 + 2 + 5 + 7 + 1)
    assert.is(r.distinct_adapters, 3)
  }
})

test('an f16 base: tokens equal, its KL to the f32 base far below the 4-bit base\'s', async () => {
  const f16 = await runE2e({...SMALL, baseDtype: 'f16', strategies: ['gather']})
  const q4 = await runE2e({...SMALL, baseDtype: 'q4', strategies: ['gather']})
  for (const r of [...f16.results, ...q4.results]) assert.ok(r.tokens_equal, r.strategy)
  assert.ok(f16.config.kl_to_float!.mean < q4.config.kl_to_float!.mean / 10, `f16 ${f16.config.kl_to_float!.mean} vs q4 ${q4.config.kl_to_float!.mean}`)
  assert.is(f16.config.model.base_dtype, 'f16')
})

test('several adapter counts: one result per strategy and count', async () => {
  const report = await runE2e({...SMALL, adapters: [1, 5], strategies: ['gather']})
  assert.equal(report.results.map((r) => [r.strategy, r.adapters, r.distinct_adapters]), [
    ['base', 1, 1],
    ['gather', 1, 1],
    ['base', 5, 5],
    ['gather', 5, 5],
  ])
  assert.equal(report.config.adapters.counts, [1, 5])
})

test('refusals: a strategy the adapters cannot serve, a request past the model positions', async () => {
  assert.is((await rejection(runE2e({...SMALL, dims: {...SMALL.dims, maxPositions: 10}}))).code, 'CONTEXT_TOO_LONG')
  assert.is((await rejection(runE2e({...SMALL, sharedB: 'x.safetensors'}))).code, 'BAD_FLAG')
})

const real = skipIf(test, storiesMissing())
real('stories260K with a pack of its real adapters: every strategy that can serve a pack generates the reference tokens', async () => {
  const pack = join(tmp.path, 'stories.safetensors')
  await packAdapters({inputs: ['lora_small', 'lora_medium'].map((a) => join(STORIES, 'adapters', a)), out: pack})
  const notes: string[] = []
  const report = await runE2e({...SMALL, model: join(STORIES, 'hf'), pack, workload: {kind: 'uniform'}, baseFraction: 0.25, requests: 8, onNote: (l) => notes.push(l)})
  assert.equal(report.results.map((r) => r.strategy), E2E_DEFAULT_STRATEGIES.filter((s) => s !== 'shared-b'))
  assert.match(notes.join('\n'), /shared-b left out: shared-b serves a shared-B form, which these adapters lack/)
  for (const r of report.results) assert.ok(r.tokens_equal, `${r.strategy}: ${JSON.stringify(r.mismatches)}`)
  assert.equal(report.config.adapters.counts, [2])
  assert.is(report.config.model.vocab, 512)
  assert.is(report.config.adapters.source, pack)
})

real('stories260K with the pack and its lossy lora compress output: shared-b is held to the compressed adapters, gather to the originals', async () => {
  const pack = join(tmp.path, 'stories2.safetensors')
  const shared = join(tmp.path, 'stories2-k8.safetensors')
  await packAdapters({inputs: ['lora_small', 'lora_medium'].map((a) => join(STORIES, 'adapters', a)), out: pack})
  await compressFile({inputs: [pack], out: shared, selection: {rank: 8}, dtype: 'F32'})
  const report = await runE2e({...SMALL, model: join(STORIES, 'hf'), pack, sharedB: shared, strategies: ['gather', 'shared-b'], workload: {kind: 'uniform'}, requests: 6})
  assert.is(report.config.adapters.shared_exact, false)
  assert.is(report.config.adapters.shared_k, 8)
  assert.is(report.config.adapters.shared_b, shared)
  for (const r of report.results) assert.ok(r.tokens_equal, `${r.strategy}: ${JSON.stringify(r.mismatches)}`)
})

test.run()
