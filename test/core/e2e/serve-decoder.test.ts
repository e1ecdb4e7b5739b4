/**
 * Continuous batching on real decoders: on stories260K with its two
 * adapters routed per request, requests that arrive, join and leave under a
 * batch limit and a KV budget generate exactly the tokens each one gets
 * decoded alone on the base with its adapter applied unmerged (another code
 * path: the runtime's plain LoRA provider, batch 1); a routing mistake
 * shows as a mismatch naming the request. Clocks are fake (a cost per
 * call): no test measures wall time.
 */
import {join} from 'node:path'
import {suite} from 'uvu'
import * as assert from 'uvu/assert'
import {costTimer} from '../../../src/core/e2e/batch-engine.js'
import {checkTokens} from '../../../src/core/e2e/check-tokens.js'
import {DecoderEngine, kvBytesPerToken} from '../../../src/core/e2e/decoder-engine.js'
import type {ReferenceTokens} from '../../../src/core/e2e/reference-run.js'
import {E2eRequest, drawRequests} from '../../../src/core/e2e/requests.js'
import {Scheduler} from '../../../src/core/e2e/scheduler.js'
import {packAdapters} from '../../../src/core/pack/pack-adapters.js'
import type {DecoderModel} from '../../../src/core/runtime/decoder-model.js'
import {argmax} from '../../../src/core/runtime/generate.js'
import {LoadedDecoder, loadDecoder} from '../../../src/core/runtime/load-decoder.js'
import {STORIES, storiesMissing} from '../../helpers/decoder-fixtures.js'
import {skipIf, tempDir} from '../../helpers/index.js'

const missing = storiesMissing()
const have = missing === undefined
const test = suite('e2e/serve-decoder (stories260K)')
const real = skipIf(test, missing)
const tmp = tempDir('lora-e2e-serve-')
const ADAPTERS = ['lora_small', 'lora_medium'] as const
const fakeClock = costTimer((c) => (c.kind === 'prefill' ? 20 + c.tokens : 8 + c.rows))
let pack = ''
let routed: LoadedDecoder | undefined
let requests: E2eRequest[] = []
const expected = new Map<string, number[]>()

/** Greedy decoding of one request alone (batch 1). */
async function decodeAlone(model: DecoderModel, r: E2eRequest): Promise<number[]> {
  let out = await model.forward({tokens: [r.prompt]})
  const tokens = [argmax(out.logits[0]!)]
  while (tokens.length < r.maxTokens) {
    out = await model.forward({tokens: [[tokens.at(-1)!]], cache: out.cache})
    tokens.push(argmax(out.logits[0]!))
  }
  return tokens
}

test.before(async () => {
  if (!have) return
  pack = join(tmp.path, 'stories.safetensors')
  await packAdapters({inputs: ADAPTERS.map((a) => join(STORIES, 'adapters', a)), out: pack})
  routed = await loadDecoder({base: join(STORIES, 'hf'), routed: {pack, strategy: 'gather'}})
  // 7 requests over both adapters and none, Poisson arrivals at 40 per (fake) second, prompts of 6, 9 tokens generated
  // prompts of 4 to 6 tokens and 6 to 9 generated, so prefill batches are right-padded and rows leave at different steps
  requests = drawRequests({requests: 7, promptTokens: 6, genTokens: 9, adapters: ADAPTERS, workload: {kind: 'uniform'}, baseFraction: 0.3, arrival: {kind: 'poisson', rate: 40}, vocab: 512, seed: 3}).map((r, i) => ({
    ...r,
    prompt: r.prompt.slice(0, 4 + (i % 3)),
    maxTokens: 6 + (i % 4),
  }))
  for (const adapter of [null, ...ADAPTERS]) {
    const alone = await loadDecoder({base: join(STORIES, 'hf'), adapters: adapter ? [{path: join(STORIES, 'adapters', adapter)}] : []})
    try {
      for (const r of requests.filter((x) => x.adapter === adapter)) expected.set(r.id, await decodeAlone(alone.model, r))
    } finally {
      await alone.close()
    }
  }
})

test.after(async () => {
  await routed?.close()
  tmp.cleanup()
})

real('the workload mixes both adapters and the base, arriving over time', () => {
  assert.equal(new Set(requests.map((r) => r.adapter)), new Set([null, ...ADAPTERS]))
  assert.ok(requests.at(-1)!.arrival > 0)
})

real('requests joining and leaving a batch of at most 3 get the tokens they get decoded alone', async () => {
  const s = new Scheduler({engine: new DecoderEngine(routed!.model, true), requests, maxBatch: 3, kvBytesPerToken: kvBytesPerToken(routed!.weights.config), policy: 'mixed', timer: fakeClock})
  const trace = await s.run()
  assert.is(trace.peakRows, 3)
  const joins = trace.calls.filter((c) => c.kind === 'prefill').length
  assert.ok(joins >= 3, `requests joined in ${joins} prefill calls`)
  for (const r of trace.requests) assert.equal(r.tokens, expected.get(r.id), r.id)
})

real('under a KV budget of two requests the same tokens come out, two at a time', async () => {
  const perToken = kvBytesPerToken(routed!.weights.config)
  const s = new Scheduler({engine: new DecoderEngine(routed!.model, true), requests, maxBatch: 8, kvBytesPerToken: perToken, kvBudgetBytes: 2 * 15 * perToken, policy: 'mixed', timer: fakeClock})
  const trace = await s.run()
  assert.is(trace.peakRows, 2) // requests reserve 10 to 15 positions: two fit in 30
  assert.ok(trace.peakKvBytes > 0 && trace.peakKvBytes <= 2 * 15 * perToken)
  for (const r of trace.requests) assert.equal(r.tokens, expected.get(r.id), r.id)
})

real('a routing mistake (each row handed another adapter) fails the check, naming the requests', async () => {
  const engine = new DecoderEngine(routed!.model, true)
  const other = (a: string | null) => (a === 'lora_small' ? 'lora_medium' : a === 'lora_medium' ? 'lora_small' : a)
  const wrong = {
    prefill: (rows: Parameters<typeof engine.prefill>[0]) => engine.prefill(rows.map((r) => ({...r, adapter: other(r.adapter)}))),
    decode: (cache: Parameters<typeof engine.decode>[0], rows: Parameters<typeof engine.decode>[1]) => engine.decode(cache, rows.map((r) => ({...r, adapter: other(r.adapter)}))),
    join: engine.join.bind(engine),
    keep: engine.keep.bind(engine),
    cacheBytes: engine.cacheBytes.bind(engine),
  }
  const trace = await new Scheduler({engine: wrong, requests, maxBatch: 4, kvBytesPerToken: 1, policy: 'mixed', timer: fakeClock}).run()
  const reference = new Map<string, ReferenceTokens>([...expected].map(([id, tokens]) => [id, {tokens, runnerUp: tokens.map(() => -1), margin: tokens.map(() => 1), scale: tokens.map(() => 1)}]))
  const check = checkTokens(trace.requests, reference)
  assert.is(check.equal, false)
  // requests without adapter are served right; those with one get the other adapter (a short run may agree by chance)
  const adapted = new Set(requests.filter((r) => r.adapter !== null).map((r) => r.id))
  const named = check.mismatches.map((m) => m.request)
  assert.ok(named.every((id) => adapted.has(id)), `named ${named}`)
  assert.ok(named.length >= adapted.size / 2, `named ${named} of ${[...adapted]}`)
  for (const m of check.mismatches) assert.is(m.adapter, requests.find((r) => r.id === m.request)!.adapter)
})

test.run()
