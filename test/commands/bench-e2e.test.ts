/**
 * `lora bench --e2e` as a user runs it: the documented JSON shape (also in
 * --out), the two SVGs, and usage errors in both output modes (exit 2):
 * flags of the linear bench, e2e flags without --e2e, a bad --rate, dims
 * beside a model path; the llama.cpp peer by --strategies llama.cpp --engine-dir,
 * and refused with the install line where node-llama-cpp is not found.
 */
import {existsSync, readFileSync} from 'node:fs'
import {join} from 'node:path'
import {suite} from 'uvu'
import * as assert from 'uvu/assert'
import {locateLlamaCpp} from '../../src/core/engines/llama-cpp.js'
import {runCli, skipIf, tempDir} from '../helpers/index.js'
import {ENGINES_DIR, llamaCppMissing} from '../helpers/llama-engine.js'

const test = suite('command bench --e2e')
const TINY = ['bench', '--e2e', '--hidden', '64', '--intermediate', '128', '--layers', '1', '--vocab', '128', '--heads', '4', '--kv-heads', '2', '--adapters', '6', '--rank', '4', '--shared-k', '4', '--requests', '4', '--prompt-tokens', '4', '--gen-tokens', '3', '--max-batch', '2']

test('--json, --out and --plot: the documented report, a throughput and a latency-CDF SVG', async () => {
  const tmp = tempDir()
  try {
    const out = join(tmp.path, 'r.json')
    const plot = join(tmp.path, 'e2e.svg')
    const r = await runCli([...TINY, '--strategies', 'gather,merged', '--rate', '50', '--json', '--out', out, '--plot', plot])
    assert.is(r.status, 0, r.stderr)
    const report = JSON.parse(r.stdout)
    assert.equal(JSON.parse(readFileSync(out, 'utf8')), report)
    assert.equal(Object.keys(report).sort(), ['config', 'results', 'tokens_equal'])
    assert.is(report.tokens_equal, true)
    assert.equal(Object.keys(report.config).sort(), ['adapters', 'ep', 'ep_detail', 'kind', 'kl_to_float', 'merged_cache', 'model', 'notes', 'onnxruntime_version', 'rss_peak_bytes', 'scheduler', 'threads', 'tie_tolerance', 'workload'])
    assert.equal(report.config.workload.arrival, 'poisson')
    assert.equal(report.config.workload.rate, 50)
    assert.equal(report.results.map((x: {strategy: string}) => x.strategy), ['base', 'gather', 'merged'])
    for (const x of report.results) {
      for (const k of ['tokens_per_s', 'ttft_ms', 'itl_ms', 'memory', 'relative_to_base', 'tokens_equal', 'samples_ms']) assert.ok(k in x, k)
      assert.equal(Object.keys(x.tokens_per_s).sort(), ['decode', 'prefill', 'total'])
      assert.equal(Object.keys(x.ttft_ms).sort(), ['mean', 'p50', 'p90', 'p99', 'samples'])
      assert.equal(Object.keys(x.memory).sort(), ['adapter_bytes', 'device_bytes', 'kv_cache_bytes_peak', 'kv_reserved_bytes_peak', 'session_bytes'])
      assert.is(x.tokens_equal, true)
    }
    const svg = readFileSync(plot, 'utf8')
    assert.equal([...svg.matchAll(/data-strategy="([^"]+)"/g)].map((m) => m[1]), ['base', 'gather', 'merged'])
    const cdf = readFileSync(join(tmp.path, 'e2e-latency.svg'), 'utf8')
    assert.is([...cdf.matchAll(/class="series"/g)].length, 6)
  } finally {
    tmp.cleanup()
  }
})

test('the table: one row per strategy, the token check said', async () => {
  const r = await runCli([...TINY, '--strategies', 'segment'])
  assert.is(r.status, 0, r.stderr)
  assert.match(r.stdout, /^llama 64\/128×1, f32 base, rank 4, 4 requests 4\+3, distinct, offline \(cpu\)/)
  assert.match(r.stdout, /\nbase +6 +4 .* yes\n/)
  assert.match(r.stdout, /\nsegment +6 +4 .* yes\n?/)
})

test('usage errors exit 2 in both output modes', async () => {
  const cases: Array<[string[], RegExp]> = [
    [[...TINY, '--batch', '8'], /--batch is a flag of the linear bench; --e2e does not take it/],
    [[...TINY, '--rate', '0'], /--rate must be a number > 0 \(got "0"\)/],
    [[...TINY, '--model', 'layer'], /--model layer is the linear bench/],
    [[...TINY, '--strategies', 'nope'], /--strategies: unknown strategy "nope"/],
    [['bench', '--e2e', '--model', 'some/model', '--hidden', '64'], /--hidden describes a synthetic model/],
    [['bench', '--requests', '4'], /All of the following must be provided when using --requests: --e2e|The following error occurred/],
    [['bench', '--model', 'some/model'], /--model must be llama or layer/],
  ]
  for (const [args, message] of cases) {
    const plain = await runCli(args)
    assert.is(plain.status, 2, `${args.join(' ')}: ${plain.stderr}`)
    assert.match(plain.stderr, message)
    const json = await runCli([...args, '--json'])
    assert.is(json.status, 2, args.join(' '))
    assert.match(JSON.parse(json.stdout).error.message, message)
  }
})

test('outputs that exist are refused before serving, unless --force', async () => {
  const tmp = tempDir()
  try {
    const out = join(tmp.path, 'r.json')
    assert.is((await runCli([...TINY, '--strategies', 'gather', '--out', out])).status, 0)
    assert.ok(existsSync(out))
    const again = await runCli([...TINY, '--strategies', 'gather', '--out', out])
    assert.is(again.status, 2)
    assert.match(again.stderr, /exists/)
  } finally {
    tmp.cleanup()
  }
})

/** TINY with a vocabulary the tokenizer llama.cpp needs fits in, and one thread (llama.cpp's workers spin-wait). */
const PEER = [...TINY.map((a, i) => (TINY[i - 1] === '--vocab' ? '400' : a)), '--threads', '1']

skipIf(test, llamaCppMissing(false))('--strategies llama.cpp --engine-dir: the peer and its base alone in the JSON, tokens checked at the peer\'s tolerance', async () => {
  const r = await runCli([...PEER, '--strategies', 'llama.cpp', '--engine-dir', ENGINES_DIR, '--json'])
  assert.is(r.status, 0, r.stderr)
  const report = JSON.parse(r.stdout)
  assert.equal(report.results.map((x: {strategy: string; policy: string}) => [x.strategy, x.policy]), [
    ['base', 'mixed'],
    ['llama.cpp', 'per-adapter'],
    ['llama.cpp-base', 'mixed'],
  ])
  for (const x of report.results.slice(1)) {
    assert.is(x.tokens_equal, true)
    assert.is(x.exact_requests + x.near_ties, 4)
    assert.ok(x.tie_tolerance > report.config.tie_tolerance)
  }
  assert.match(report.config.notes.join('\n'), /llama\.cpp: 4 adapters exported as F16 GGUF LoRA adapters by lora export/)
})

skipIf(test, locateLlamaCpp() ? `node-llama-cpp is installed where lora itself finds it (${locateLlamaCpp()})` : undefined)('--strategies llama.cpp where node-llama-cpp is not found: exit 2 with the install line', async () => {
  const tmp = tempDir()
  try {
    const r = await runCli([...PEER, '--strategies', 'llama.cpp', '--engine-dir', tmp.path])
    assert.is(r.status, 2)
    assert.match(r.stderr, /--strategies llama\.cpp: node-llama-cpp@3\.21\.1 is not installed where lora looks .*npm i -E node-llama-cpp@3\.21\.1/)
  } finally {
    tmp.cleanup()
  }
})

test.run()
