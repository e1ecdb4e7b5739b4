/**
 * `npm run bench:e2e`: the end-to-end serving targets in one run, every
 * ratio side by side.
 *
 * 1. main: a synthetic Llama 2048/5632 × 4 layers, vocab 32000, 32 requests
 *    of 128 prompt + 128 generated tokens arriving at once, 1,000 adapters
 *    of rank 16 on q,k,v,o loaded, 32 distinct: every strategy against base
 *    (best exact routed ≥ 0.85 × base decode tokens/s, shared-b ≥ 0.90 ×,
 *    routed ≥ 10 × merged), and the llama.cpp peer (node-llama-cpp from
 *    test/engines, `npm run install:engines`; CPU runs only): routed ≥ 2 ×
 *    llama.cpp, with llama.cpp's base alone against base beside it. The peer
 *    loads the model as a GGUF and only the 32 adapters the requests use
 *    (exported by lora export into a temporary folder), not the 1,000;
 * 2. q4: the 4-bit base (MatMulNBits) with the adapters unmerged against the
 *    f32 base, 8 concurrent requests (≥ 1.5 × the f32-base routed decode
 *    tokens/s), with its mean KL to the f32 base;
 * 3. poisson: Poisson arrivals at half the capacity row 1 measured, base and
 *    the best routed strategy (routed p99 ITL ≤ 1.3 × base);
 * 4. sweep: decode throughput against adapters loaded (1 … 1,000), every
 *    strategy, shorter requests, and its plot (`sweep.svg`, `sweep-latency.svg`).
 *
 * Then the physical account of row 1: bytes each strategy moves per decode
 * step (weights, KV cache, adapters: `step-traffic.ts`) against the memory
 * bandwidth measured here, and for each target missed the measured figure,
 * what bytes alone would give and the part that dominates; a missed q4 or
 * routed ÷ merged target adds onnxruntime's MatMul time alone for the same
 * weights at the step's rows (on the CPU), so the share of the step the
 * products take is measured, not assumed (`npm run bench:step` splits a step
 * further); a missed p99 ITL the decode-step and prefill-call times.
 *
 * `--reuse-main` takes row 1 from the `main.json` an earlier run left in the
 * same folder (same sizes and provider) instead of measuring it again, so the
 * rows can run one at a time; the account below is printed from it all the same.
 *
 * Every row is a `lora bench --e2e` process whose command is printed; its
 * JSON report and `summary.json` stay in `<work-dir>/e2e[-quick]/`. Every row
 * checks each strategy's tokens against the reference: the script exits 1
 * when any differed (after printing everything).
 *
 *   npm run bench:e2e [-- --quick] [-- --ep cpu|webgpu|cuda] [-- --work-dir DIR] [-- --only main,q4,poisson,sweep] [-- --reuse-main]
 *                     [-- --hidden H --intermediate I --layers L --vocab V --adapters N --requests R --prompt-tokens P --gen-tokens G --sweep-adapters 1,10,100 --threads T]
 */
import {existsSync, mkdirSync, readFileSync, statSync, writeFileSync} from 'node:fs'
import {cpus, loadavg} from 'node:os'
import {join, resolve} from 'node:path'
import {renderTable} from '../src/cli/table.js'
import type {E2eReport, E2eResult} from '../src/core/e2e/e2e-report.js'
import {decodeTraffic} from '../src/core/e2e/step-traffic.js'
import {NODE_LLAMA_CPP_VERSION, locateLlamaCpp} from '../src/core/engines/llama-cpp.js'
import {formatBytes} from '../src/core/units.js'
import {syntheticDecoderWeights} from '../src/core/e2e/synthetic-decoder.js'
import {buildMatMulBaseline} from '../src/core/runtime/matmul-baseline.js'
import {ROOT, flag, runLora} from './script.js'

const quick = process.argv.includes('--quick')
const ep = flag('--ep') ?? 'cpu'
const only = new Set((flag('--only') ?? 'main,q4,poisson,sweep').split(','))
const size = {
  hidden: flag('--hidden') ?? (quick ? '128' : '2048'),
  intermediate: flag('--intermediate') ?? (quick ? '352' : '5632'),
  layers: flag('--layers') ?? (quick ? '2' : '4'),
  vocab: flag('--vocab') ?? (quick ? '2000' : '32000'),
  adapters: flag('--adapters') ?? (quick ? '50' : '1000'),
  requests: flag('--requests') ?? (quick ? '8' : '32'),
  prompt: flag('--prompt-tokens') ?? (quick ? '16' : '128'),
  gen: flag('--gen-tokens') ?? (quick ? '16' : '128'),
  q4Requests: quick ? '4' : '8',
  sweep: flag('--sweep-adapters') ?? (quick ? '1,5,50' : '1,10,100,1000'),
  sweepTokens: quick ? '8' : '32',
  threads: flag('--threads') ?? '2',
}
const issueSizes = !quick && size.hidden === '2048' && size.intermediate === '5632' && size.layers === '4' && size.vocab === '32000' && size.adapters === '1000' && size.requests === '32' && size.prompt === '128' && size.gen === '128'
const outDir = join(resolve(flag('--work-dir') ?? join(ROOT, '.bench-work')), issueSizes ? 'e2e' : 'e2e-quick')
mkdirSync(outDir, {recursive: true})

/** Routed strategies that serve the adapters exactly, and all routed ones. */
const EXACT = ['gather', 'segment', 'mask']
const ROUTED = [...EXACT, 'shared-b']
const TARGETS = {exact: 0.85, sharedB: 0.9, merged: 10, llamaCpp: 2, q4: 1.5, itlP99: 1.3}
/** node-llama-cpp as the tests install it; the peer runs llama.cpp's CPU build, so only beside a CPU run. */
const ENGINE_DIR = join(ROOT, 'test/engines')
const peerMissing = ep !== 'cpu' ? `the peer runs llama.cpp on the CPU, this run is --ep ${ep}` : locateLlamaCpp({searchFrom: [ENGINE_DIR]}) ? undefined : `node-llama-cpp@${NODE_LLAMA_CPP_VERSION} is not installed in ${ENGINE_DIR} (npm run install:engines)`

const started = Date.now()
const seconds: Record<string, number> = {}
const summary: Record<string, unknown> = {sizes: size, issue_sizes: issueSizes, ep}
let tokensDiffered = false

const MODEL = ['--hidden', size.hidden, '--intermediate', size.intermediate, '--layers', size.layers, '--vocab', size.vocab, '--rank', '16', '--targets', 'q,k,v,o', '--shared-k', '16', '--ep', ep, '--threads', size.threads]

/** Run `lora bench --e2e` with `flags`, print the exact command, return its report. */
function e2e(label: string, flags: string[]): E2eReport {
  const out = join(outDir, `${label}.json`)
  const argv = ['bench', '--e2e', ...MODEL, ...flags, '--out', out, '--force']
  const r = runLora(argv)
  seconds[label] = r.seconds
  if (r.status === 1) tokensDiffered = true
  else if (r.status !== 0) {
    console.error(`bench:e2e: "${label}" exited with ${r.status}`)
    process.exit(r.status ?? 3)
  }
  console.log(`(${seconds[label]!.toFixed(0)} s)`)
  return JSON.parse(readFileSync(out, 'utf8')) as E2eReport
}

const fmt = (v: number | undefined, d = 3) => (v === undefined || !Number.isFinite(v) ? '—' : v.toFixed(d))
const met = (ok: boolean | undefined) => (ok === undefined ? 'n/a' : ok ? 'met' : 'MISSED')
const find = (report: E2eReport, strategy: string, adapters?: number) => report.results.find((r) => r.strategy === strategy && (adapters === undefined || r.adapters === adapters))
const best = (report: E2eReport, among: readonly string[]) =>
  report.results.filter((r) => among.includes(r.strategy)).sort((a, b) => b.relative_to_base.decode_tokens_per_s - a.relative_to_base.decode_tokens_per_s)[0]

/** Copy bandwidth (read + write, bytes/s) of this machine, one thread, median of 5. */
function copyBandwidth(): number {
  const n = (quick ? 32 : 128) * 2 ** 20
  const src = new Float32Array(n).fill(1)
  const dst = new Float32Array(n)
  dst.set(src)
  const rates: number[] = []
  for (let i = 0; i < 5; i++) {
    const t0 = performance.now()
    dst.set(src)
    rates.push((2 * 4 * n) / ((performance.now() - t0) / 1000))
  }
  return rates.sort((a, b) => a - b)[2]!
}

/** The bytes a decode step of result `r` moves (`step-traffic.ts`), from its report's shapes. */
function trafficOf(report: E2eReport, r: E2eResult) {
  const c = report.config.model
  const w = report.config.workload
  const rank = report.config.adapters.rank
  const k = report.config.adapters.shared_k ?? rank
  const q = c.heads * c.head_dim
  const kv = c.kv_heads * c.head_dim
  // the adapted projections q, k, v, o: their inputs and outputs, summed over layers
  const sumIn = c.layers * (3 * c.hidden + q)
  const sumOut = c.layers * (q + 2 * kv + c.hidden)
  return decodeTraffic(r.strategy, {
    config: {hidden: c.hidden, intermediate: c.intermediate, layers: c.layers, heads: c.heads, kvHeads: c.kv_heads, headDim: c.head_dim, vocab: c.vocab},
    baseDtype: c.base_dtype as 'f32' | 'f16' | 'q4',
    rows: r.mean_decode_batch,
    context: (w.prompt_tokens ?? 0) + (w.gen_tokens ?? 0) / 2,
    distinct: Math.min(r.distinct_adapters, Math.round(r.mean_decode_batch)),
    slots: r.adapters + 1,
    adapterBytes: 4 * rank * (sumIn + sumOut),
    sharedABytes: 4 * k * sumIn,
    sharedBBytes: 4 * k * sumOut,
  })
}

/** Mean milliseconds of a decode call, and of a prefill call. */
const stepMs = (r: E2eResult) => (1000 * r.decode_s) / r.decode_calls
const prefillMs = (r: E2eResult) => (1000 * r.prefill_s) / r.prefill_calls

/** Multiply-adds ×2 of the linear weights per decode step: 2 × rows × (projection and head parameters). */
function stepFlops(report: E2eReport, r: E2eResult): number {
  const c = report.config.model
  const q = c.heads * c.head_dim
  const kv = c.kv_heads * c.head_dim
  const params = c.layers * (c.hidden * (2 * q + 2 * kv) + 3 * c.hidden * c.intermediate) + c.vocab * c.hidden
  return 2 * r.mean_decode_batch * params
}

/**
 * onnxruntime's MatMul time, alone, for one decode step of `rows` rows over
 * the row-1 model's linear weights (synthetic, any seed: only the shapes
 * matter) and its head on every row: the part of a step the products take,
 * median of 7 runs after a warm-up, on the same provider threads.
 */
async function productsMs(report: E2eReport, rows: number): Promise<number> {
  const c = report.config.model
  const weights = syntheticDecoderWeights({hidden: c.hidden, intermediate: c.intermediate, layers: c.layers, vocab: c.vocab, heads: c.heads, kvHeads: c.kv_heads}, 1)
  const baseline = await buildMatMulBaseline(weights, {rows, logitRows: rows, threads: Number(size.threads)})
  try {
    await baseline.run()
    const times: number[] = []
    for (let i = 0; i < 7; i++) {
      const t0 = performance.now()
      await baseline.run()
      times.push(performance.now() - t0)
    }
    return times.sort((a, b) => a - b)[3]!
  } finally {
    await baseline.release()
  }
}

let bandwidthMeasured: number | undefined
/** The copy bandwidth, measured once. */
function memoryBandwidth(): number {
  bandwidthMeasured ??= copyBandwidth()
  return bandwidthMeasured
}

const lines: string[] = []
/** A line of the final summary, printed now too (a run cut short by a time budget keeps what it measured). */
const say = (text = '') => {
  lines.push(text)
  console.log(text)
}
let main: E2eReport | undefined

if (only.has('main')) {
  const peer = peerMissing ? [] : ['llama.cpp']
  const [load] = loadavg()
  if (peer.length > 0 && !process.argv.includes('--reuse-main') && Number(size.threads) > 1 && load > cpus().length / 2) {
    say(`note: load average ${load.toFixed(1)} on ${cpus().length} cores before row 1: llama.cpp's worker threads spin-wait for each other inside a step, and on a busy machine one descheduled thread stalls the rest (measured on a loaded 2-core machine: a stories260K decode step took a median of 4–100 ms on 2 threads against 0.25 ms on 1), so the peer's figures here are not its speed; measure on a quiet machine`)
  }
  const reused = process.argv.includes('--reuse-main') ? savedMain() : undefined
  if (process.argv.includes('--reuse-main') && !reused) {
    console.error(`bench:e2e: --reuse-main needs ${join(outDir, 'main.json')} from an earlier run at these sizes and --ep ${ep}`)
    process.exit(2)
  }
  main = reused ?? e2e('main', ['--adapters', size.adapters, '--requests', size.requests, '--prompt-tokens', size.prompt, '--gen-tokens', size.gen, '--max-batch', size.requests, '--workload', 'distinct', '--strategies', ['gather', 'segment', 'shared-b', 'merged', ...peer].join(','), ...(peerMissing ? [] : ['--engine-dir', ENGINE_DIR])])
  const base = find(main, 'base')!
  const exact = best(main, EXACT)
  const routedBest = best(main, ROUTED)
  const shared = find(main, 'shared-b')
  const merged = find(main, 'merged')
  const routedOverMerged = routedBest && merged ? routedBest.tokens_per_s.total / merged.tokens_per_s.total : undefined
  const llama = find(main, 'llama.cpp')
  const llamaBase = find(main, 'llama.cpp-base')
  const routedOverLlama = routedBest && llama ? routedBest.tokens_per_s.total / llama.tokens_per_s.total : undefined
  const llamaBaseOverBase = llamaBase ? llamaBase.tokens_per_s.total / base.tokens_per_s.total : undefined
  say(`1. main: ${main.results[0]!.requests} requests of ${size.prompt} + ${size.gen} tokens, ${size.adapters} adapters loaded, ${base.distinct_adapters} distinct, offline (${main.config.ep_detail})`)
  say(
    renderTable(
      ['strategy', 'decode tok/s', '× base', 'total tok/s', 'prefill tok/s', 'TTFT p50 ms', 'TTFT p99 ms', 'ITL p50 ms', 'ITL p99 ms', 'KV peak', 'adapter bytes', 'tokens = reference'],
      main.results.map((r) => [r.strategy, fmt(r.tokens_per_s.decode, 1), fmt(r.relative_to_base.decode_tokens_per_s), fmt(r.tokens_per_s.total, 1), fmt(r.tokens_per_s.prefill, 1), fmt(r.ttft_ms.p50, 0), fmt(r.ttft_ms.p99, 0), fmt(r.itl_ms.p50, 1), fmt(r.itl_ms.p99, 1), formatBytes(r.memory.kv_cache_bytes_peak), formatBytes(r.memory.adapter_bytes), r.tokens_equal ? `yes${r.near_ties ? ` (${r.near_ties} near ties)` : ''}` : 'NO']),
    ),
  )
  say()
  say(
    renderTable(
      ['target', 'measured', 'target', ''],
      [
        [`best exact routed (${exact?.strategy ?? '—'}) decode × base`, fmt(exact?.relative_to_base.decode_tokens_per_s), `≥ ${TARGETS.exact}`, met(exact && exact.relative_to_base.decode_tokens_per_s >= TARGETS.exact)],
        ['shared-b decode × base', fmt(shared?.relative_to_base.decode_tokens_per_s), `≥ ${TARGETS.sharedB}`, met(shared && shared.relative_to_base.decode_tokens_per_s >= TARGETS.sharedB)],
        [`routed (${routedBest?.strategy ?? '—'}) ÷ merged, tokens/s end to end (C = ${main.config.merged_cache})`, fmt(routedOverMerged, 1), `≥ ${TARGETS.merged}`, met(routedOverMerged === undefined ? undefined : routedOverMerged >= TARGETS.merged)],
        [
          `routed (${routedBest?.strategy ?? '—'}) ÷ llama.cpp peer, tokens/s end to end (beside it: llama.cpp-base ÷ base)`,
          routedOverLlama === undefined ? '—' : `${fmt(routedOverLlama, 2)} (${fmt(llamaBaseOverBase, 3)})`,
          `≥ ${TARGETS.llamaCpp}`,
          peerMissing ? `not run: ${peerMissing}` : met(routedOverLlama === undefined ? undefined : routedOverLlama >= TARGETS.llamaCpp),
        ],
      ],
    ),
  )
  if (llama && llamaBase) {
    const adapterGap = llama.tokens_per_s.total / llamaBase.tokens_per_s.total
    say(
      `llama.cpp: ${llamaBaseOverBase! > 1 ? `its engine is faster than the runtime for the base alone (llama.cpp-base ${fmt(llamaBaseOverBase, 2)}× base's tokens/s end to end)` : `the runtime's base is ${fmt(1 / llamaBaseOverBase!, 2)}× llama.cpp's base alone (the engine gap)`}; ` +
        `with the ${base.distinct_adapters} distinct adapters llama.cpp keeps ${fmt(adapterGap, 3)} of its own base's tokens/s (the adapter gap: it applies one adapter per batch, so it decoded ${fmt(llama.mean_decode_batch, 1)} rows per step against ${fmt(llamaBase.mean_decode_batch, 1)}), ` +
        `against ${fmt(routedBest!.tokens_per_s.total / base.tokens_per_s.total, 3)} for ${routedBest!.strategy}. Its tokens: ${llama.exact_requests} of ${llama.requests} requests exact, ${llama.near_ties} near ties at its tolerance ${llama.tie_tolerance.toExponential(2)} (binary16 KV cache).`,
    )
  }
  say('mask is left out of row 1: at 1,000 adapters it multiplies every slot and needs about three working copies of the stacks (lora bench measured 18× a base layer); it runs in the sweep while it fits in memory.')
  summary.main = {
    base_decode_tokens_per_s: base.tokens_per_s.decode,
    best_exact: exact && {strategy: exact.strategy, ratio: exact.relative_to_base.decode_tokens_per_s},
    shared_b: shared?.relative_to_base.decode_tokens_per_s,
    routed_over_merged: routedOverMerged,
    merged_stats: merged?.stats,
    routed_over_llama_cpp: routedOverLlama ?? null,
    llama_cpp_base_over_base: llamaBaseOverBase ?? null,
    llama_cpp: peerMissing ? {not_run: peerMissing} : {exact_requests: llama?.exact_requests, near_ties: llama?.near_ties, tie_tolerance: llama?.tie_tolerance},
  }
}

if (only.has('q4')) {
  const common = ['--adapters', size.adapters, '--requests', size.q4Requests, '--max-batch', size.q4Requests, '--prompt-tokens', size.prompt, '--gen-tokens', size.gen, '--workload', 'distinct', '--strategies', 'gather']
  const f32 = e2e('q4-f32-base', [...common, '--base-dtype', 'f32'])
  const q4 = e2e('q4-base', [...common, '--base-dtype', 'q4'])
  const a = find(f32, 'gather')!
  const b = find(q4, 'gather')!
  const ratio = b.tokens_per_s.decode / a.tokens_per_s.decode
  const kl = q4.config.kl_to_float
  say()
  say(`2. q4: ${size.q4Requests} concurrent requests, gather routing the ${size.adapters} adapters unmerged (f32) beside the base (two processes, one after the other)`)
  say(
    renderTable(
      ['base', 'gather decode tok/s', 'base decode tok/s', 'gather × its base', 'mean KL to the f32 base (nats/token)'],
      [
        ['f32', fmt(a.tokens_per_s.decode, 1), fmt(find(f32, 'base')!.tokens_per_s.decode, 1), fmt(a.relative_to_base.decode_tokens_per_s), '0'],
        ['q4 (MatMulNBits)', fmt(b.tokens_per_s.decode, 1), fmt(find(q4, 'base')!.tokens_per_s.decode, 1), fmt(b.relative_to_base.decode_tokens_per_s), kl ? `${kl.mean.toExponential(3)} over ${kl.positions} positions` : '—'],
      ],
    ),
  )
  say(`q4-base routed ÷ f32-base routed decode tokens/s: ${fmt(ratio)} (target ≥ ${TARGETS.q4}: ${met(ratio >= TARGETS.q4)})`)
  if (ratio < TARGETS.q4) {
    const tf = trafficOf(f32, a)!
    const tq = trafficOf(q4, b)!
    const fp = ep === 'cpu' ? await productsMs(f32, Math.round(a.mean_decode_batch)) : undefined
    const gflops = (report: E2eReport, r: E2eResult, ms: number) => stepFlops(report, r) / (ms / 1000) / 1e9
    const outside = fp === undefined ? undefined : Math.max(0, stepMs(a) - fp)
    const q4Products = outside === undefined ? undefined : Math.max(0, stepMs(b) - outside)
    say(
      `q4: measured ${fmt(ratio)} (target ${TARGETS.q4}). A decode step of ${fmt(a.mean_decode_batch, 1)} rows moves ${fmt(tf.total / 2 ** 20, 0)} MiB on the f32 base and ${fmt(tq.total / 2 ** 20, 0)} MiB on the q4 base (weights ${fmt(tf.weights / 2 ** 20, 0)} → ${fmt(tq.weights / 2 ** 20, 0)} MiB): by bytes alone the q4 step would be ${fmt(tf.total / tq.total, 2)}× faster, ` +
        `and at ${fmt(memoryBandwidth() / 1e9, 1)} GB/s the bytes take ${fmt((tf.total / memoryBandwidth()) * 1000, 1)} and ${fmt((tq.total / memoryBandwidth()) * 1000, 1)} ms against measured steps of ${fmt(stepMs(a), 1)} and ${fmt(stepMs(b), 1)} ms: neither step is bound by its bytes. ` +
        (fp === undefined || outside === undefined || q4Products === undefined
          ? `The step's ${fmt(stepFlops(q4, b) / 1e9, 2)} GFLOP of products ran at ${fmt(gflops(f32, a, stepMs(a)), 1)} GFLOP/s of step time on the f32 base and ${fmt(gflops(q4, b, stepMs(b)), 1)} on the q4 base. `
          : `onnxruntime's f32 MatMul alone, same weights, ${fmt(a.mean_decode_batch, 0)} rows, takes ${fmt(fp, 1)} ms of the f32 step's ${fmt(stepMs(a), 1)} ms (${fmt(gflops(f32, a, fp), 1)} GFLOP/s); the other ${fmt(outside, 1)} ms (attention and its copy of the KV cache, the routing, the rest of the step) are the same on either base, so the q4 step's 4-bit products take about ${fmt(q4Products, 1)} ms (${fmt(gflops(q4, b, Math.max(q4Products, 1e-3)), 1)} GFLOP/s: MatMulNBits unpacks the blocks as it multiplies, so at ${fmt(a.mean_decode_batch, 0)} rows it ${q4Products < fp ? 'gains little on' : 'is no faster than'} the f32 GEMM). Even with free 4-bit products the step could gain at most ${fmt(stepMs(a) / Math.max(outside, 1e-3), 2)}×. `) +
        `What would close it: 4-bit products that run faster than the f32 GEMM they replace (int8 activations, MatMulNBits accuracy_level 4, where the CPU has VNNI; or a GPU), and less work outside the products (attention's copy of the cache, the routing); at 1 or 2 rows a step is nearer its bytes and the 4-bit base gains more.`,
    )
  }
  summary.q4 = {ratio, kl, f32_decode: a.tokens_per_s.decode, q4_decode: b.tokens_per_s.decode}
}

/**
 * Row 1's report from an earlier run in the same folder (same sizes, same
 * provider), so `--only q4,poisson` after `--only main` takes its capacity
 * from the main row instead of measuring it again; said when used.
 */
function savedMain(): E2eReport | undefined {
  const path = join(outDir, 'main.json')
  if (!existsSync(path)) return undefined
  const report = JSON.parse(readFileSync(path, 'utf8')) as E2eReport
  const w = report.config.workload
  const sameRun = report.config.ep === ep && String(report.config.model.hidden) === size.hidden && String(w.requests) === size.requests && String(w.prompt_tokens) === size.prompt && String(w.gen_tokens) === size.gen
  if (!sameRun) return undefined
  say(`row 1 from an earlier run's report: ${path} (written ${statSync(path).mtime.toISOString()})`)
  return report
}

if (only.has('poisson')) {
  const capacityFrom = main ?? savedMain() ?? e2e('capacity', ['--adapters', size.adapters, '--requests', size.requests, '--prompt-tokens', size.prompt, '--gen-tokens', size.gen, '--max-batch', size.requests, '--strategies', 'gather'])
  const routed = best(capacityFrom, ROUTED.filter((s) => s !== 'mask'))!
  const capacity = routed.requests / routed.makespan_s
  const rate = capacity / 2
  const report = e2e('poisson', ['--adapters', size.adapters, '--requests', size.requests, '--prompt-tokens', size.prompt, '--gen-tokens', size.gen, '--max-batch', size.requests, '--workload', 'distinct', '--rate', rate.toPrecision(4), '--strategies', routed.strategy])
  const base = find(report, 'base')!
  const r = find(report, routed.strategy)!
  say()
  say(`3. poisson: ${fmt(rate, 3)} requests/s, half the capacity ${routed.strategy} showed offline in row 1 (${fmt(capacity, 3)} requests/s)`)
  say(
    renderTable(
      ['strategy', 'TTFT p50 ms', 'TTFT p90 ms', 'TTFT p99 ms', 'ITL p50 ms', 'ITL p90 ms', 'ITL p99 ms', 'tokens = reference'],
      [base, r].map((x) => [x.strategy, fmt(x.ttft_ms.p50, 0), fmt(x.ttft_ms.p90, 0), fmt(x.ttft_ms.p99, 0), fmt(x.itl_ms.p50, 1), fmt(x.itl_ms.p90, 1), fmt(x.itl_ms.p99, 1), x.tokens_equal ? 'yes' : 'NO']),
    ),
  )
  say(`${r.strategy} p99 ITL ÷ base p99 ITL: ${fmt(r.relative_to_base.itl_p99)} (target ≤ ${TARGETS.itlP99}: ${met(r.relative_to_base.itl_p99 <= TARGETS.itlP99)})`)
  if (r.relative_to_base.itl_p99 > TARGETS.itlP99) {
    say(
      `poisson: ${r.strategy}'s p99 ITL is ${fmt(r.itl_ms.p99, 1)} ms against base's ${fmt(base.itl_ms.p99, 1)} ms. A request's token gap is one decode step (${r.strategy}: ${fmt(stepMs(r), 1)} ms mean, base ${fmt(stepMs(base), 1)} ms), or a decode step and a prefill when another request joins (${r.strategy} prefill calls ${fmt(prefillMs(r), 1)} ms mean, base ${fmt(prefillMs(base), 1)} ms), so the tail follows the prefill calls: ` +
        `${prefillMs(r) / prefillMs(base) > stepMs(r) / stepMs(base) ? `routed prefill is ${fmt(prefillMs(r) / prefillMs(base), 2)}× base's (the per-request gathers are transposed and packed for every prompt), more than the decode ratio ${fmt(stepMs(r) / stepMs(base), 2)}; what would close it: chunked prefill (prompts split across steps so no gap holds a whole prefill)` : `the decode steps themselves are ${fmt(stepMs(r) / stepMs(base), 2)}× base's; what would close it: the decode-step costs of row 1`}.`,
    )
  }
  summary.poisson = {rate, capacity, strategy: r.strategy, itl_p99_ratio: r.relative_to_base.itl_p99, base: {ttft: base.ttft_ms, itl: base.itl_ms}, routed: {ttft: r.ttft_ms, itl: r.itl_ms}}
}

if (only.has('sweep')) {
  const report = e2e('sweep', ['--adapters', size.sweep, '--requests', size.requests, '--max-batch', size.requests, '--prompt-tokens', size.sweepTokens, '--gen-tokens', size.sweepTokens, '--workload', 'distinct', '--plot', join(outDir, 'sweep.svg')])
  const counts = [...new Set(report.results.map((r) => r.adapters))]
  const strategies = [...new Set(report.results.map((r) => r.strategy))]
  say()
  say(`4. sweep: decode tokens/s × base against adapters loaded (${size.requests} requests of ${size.sweepTokens} + ${size.sweepTokens} tokens, distinct); plots ${join(outDir, 'sweep.svg')} and sweep-latency.svg`)
  say(renderTable(['strategy', ...counts.map((n) => `${n} adapters`)], strategies.map((s) => [s, ...counts.map((n) => fmt(find(report, s, n)?.relative_to_base.decode_tokens_per_s))])))
  for (const n of report.config.notes) say(`note: ${n}`)
  summary.sweep = Object.fromEntries(strategies.map((s) => [s, Object.fromEntries(counts.map((n) => [n, find(report, s, n)?.relative_to_base.decode_tokens_per_s ?? null]))]))
}

if (main) {
  const bandwidth = memoryBandwidth()
  const baseRow = find(main, 'base')!
  const traffic = (r: E2eResult) => trafficOf(main!, r)
  say()
  say(`Physical account of row 1: bytes per decode step (estimates from the shapes) against ${fmt(bandwidth / 1e9, 1)} GB/s of copy bandwidth measured here (one thread, read + write)`)
  const rows = main.results.map((r) => {
    const t = traffic(r)
    return [r.strategy, fmt(r.mean_decode_batch, 1), t ? fmt(t.weights / 2 ** 20, 0) : '—', t ? fmt(t.kvCache / 2 ** 20, 0) : '—', t ? fmt(t.adapters / 2 ** 20, 0) : '—', t ? fmt(t.total / bandwidth * 1000, 1) : '—', fmt(stepMs(r), 1), t ? fmt(t.total / r.mean_decode_batch / 2 ** 20, 1) : '—']
  })
  say(renderTable(['strategy', 'rows/step', 'weights MiB', 'KV MiB', 'adapters MiB', 'bound ms/step', 'measured ms/step', 'MiB per token'], rows))
  const baseT = traffic(baseRow)!
  const explain = (r: E2eResult | undefined, target: number, what: string) => {
    if (!r || r.relative_to_base.decode_tokens_per_s >= target) return
    const t = traffic(r)!
    const bound = (baseT.total / baseRow.mean_decode_batch) / (t.total / r.mean_decode_batch)
    const parts = [['adapter gathers', t.adapters - baseT.adapters], ['KV cache', t.kvCache - baseT.kvCache]] as const
    const extra = t.total - baseT.total
    const overheadMs = stepMs(r) - stepMs(baseRow) - (extra / bandwidth) * 1000
    say(
      `${what}: measured ${fmt(r.relative_to_base.decode_tokens_per_s)} × base (target ${target}). Per decode step it moves ${fmt(t.total / 2 ** 20, 0)} MiB against base's ${fmt(baseT.total / 2 ** 20, 0)} MiB (${parts.map(([n, v]) => `${n} +${fmt(v / 2 ** 20, 0)} MiB`).join(', ')}): by bytes alone the ratio would be about ${fmt(bound)}. ` +
        `Its step takes ${fmt(stepMs(r) - stepMs(baseRow), 1)} ms more than base's, of which the extra bytes explain ${fmt((extra / bandwidth) * 1000, 1)} ms; ${overheadMs > 0 ? `the other ${fmt(overheadMs, 1)} ms are not bandwidth (per-call routing work: gathers, copies, small products)` : 'bandwidth explains all of it'}. ` +
        `What would close it: ${t.adapters > t.kvCache ? 'fewer adapter bytes per step (f16 stacks halve them; gathering each distinct adapter once)' : 'a KV cache updated in place instead of copied every step'}${overheadMs > 0 ? ', and fusing the per-request gathers and products into one kernel (Punica/S-LoRA BGMV)' : ''}.`,
    )
  }
  explain(best(main, EXACT), TARGETS.exact, 'best exact routed')
  explain(find(main, 'shared-b'), TARGETS.sharedB, 'shared-b')
  const mergedRow = find(main, 'merged')
  const routedRow = best(main, ROUTED)
  if (mergedRow && routedRow && routedRow.tokens_per_s.total / mergedRow.tokens_per_s.total < TARGETS.merged) {
    const tm = traffic(mergedRow)!
    const tr = traffic(routedRow)!
    const perToken = (t: {total: number}, r: E2eResult) => t.total / r.mean_decode_batch
    const gflops = (r: E2eResult) => stepFlops(main!, r) / (stepMs(r) / 1000) / 1e9
    // the routed step that would give the target at merged's measured speed, and the arithmetic rate it needs
    const neededMs = (stepMs(mergedRow) / mergedRow.mean_decode_batch) * routedRow.mean_decode_batch / TARGETS.merged
    const neededGflops = stepFlops(main!, routedRow) / (neededMs / 1000) / 1e9
    const products = ep === 'cpu' ? await productsMs(main!, Math.round(routedRow.mean_decode_batch)) : undefined
    say(
      `routed ÷ merged: measured ${fmt(routedRow.tokens_per_s.total / mergedRow.tokens_per_s.total, 2)} end to end (target ${TARGETS.merged}; decode alone ${fmt(routedRow.tokens_per_s.decode / mergedRow.tokens_per_s.decode, 2)}). merged decodes one adapter's rows per step (${fmt(mergedRow.mean_decode_batch, 1)}): ${fmt(perToken(tm, mergedRow) / 2 ** 20, 0)} MiB per generated token, its step ${fmt(stepMs(mergedRow), 1)} ms against ${fmt((tm.total / bandwidth) * 1000, 1)} ms for its bytes${stepMs(mergedRow) <= 1.5 * (tm.total / bandwidth) * 1000 ? ', near its bandwidth bound' : ''}; ${routedRow.strategy} moves ${fmt(perToken(tr, routedRow) / 2 ** 20, 1)} MiB per token at ${fmt(routedRow.mean_decode_batch, 1)} rows, so by bytes alone it would be ${fmt(perToken(tm, mergedRow) / perToken(tr, routedRow), 1)}× faster per token. ` +
        `The routed step is not bound by its bytes (${fmt(stepMs(routedRow), 1)} ms against ${fmt((tr.total / bandwidth) * 1000, 1)} ms for them): its ${fmt(stepFlops(main!, routedRow) / 1e9, 1)} GFLOP of products ran at ${fmt(gflops(routedRow), 1)} GFLOP/s of step time (base's step ${fmt(gflops(baseRow), 1)}). ` +
        (products === undefined
          ? ''
          : `onnxruntime's MatMul alone, on the same weights at ${fmt(routedRow.mean_decode_batch, 0)} rows, takes ${fmt(products, 1)} ms (${fmt(stepFlops(main!, routedRow) / (products / 1000) / 1e9, 1)} GFLOP/s), so the products are ${fmt((100 * products) / stepMs(routedRow), 0)}% of the routed step; the other ${fmt(stepMs(routedRow) - products, 1)} ms are attention over the KV cache (GroupQueryAttention copies the past into its present output every step), the adapters' routing and the rest of the step (npm run bench:step splits it). `) +
        `${TARGETS.merged}× would need that step in ${fmt(neededMs, 1)} ms (${fmt(neededGflops, 0)} GFLOP/s of step time). What would close it: a step that is little more than its products (attention writing only the new positions into a cache it shares with its input, which onnxruntime-node 1.30 cannot bind without copying it back; the routing's gathers fused into the products), then faster products (16-bit or 8-bit, more cores, a GPU); merged cannot get faster per token than reading the whole model once per step.`,
    )
  }
  const llama = find(main, 'llama.cpp')
  const llamaBase = find(main, 'llama.cpp-base')
  const routed = best(main, ROUTED)
  if (llama && llamaBase && routed && routed.tokens_per_s.total / llama.tokens_per_s.total < TARGETS.llamaCpp) {
    const tl = traffic(llama)!
    const tr = traffic(routed)!
    const perToken = (t: {total: number}, r: E2eResult) => t.total / r.mean_decode_batch
    const msPerToken = (r: E2eResult) => stepMs(r) / r.mean_decode_batch
    const engineGap = stepMs(baseRow) / stepMs(llamaBase)
    say(
      `routed ÷ llama.cpp: measured ${fmt(routed.tokens_per_s.total / llama.tokens_per_s.total, 2)} (target ${TARGETS.llamaCpp}). llama.cpp decodes one adapter's rows per step (${fmt(llama.mean_decode_batch, 1)}): ${fmt(perToken(tl, llama) / 2 ** 20, 1)} MiB per generated token (its GGUF weights read for every step), against ${routed.strategy}'s ${fmt(perToken(tr, routed) / 2 ** 20, 1)} MiB at ${fmt(routed.mean_decode_batch, 1)} rows: by bytes alone routed would be ${fmt(perToken(tl, llama) / perToken(tr, routed), 1)}× faster per token. ` +
        `Measured per token: llama.cpp ${fmt(msPerToken(llama), 2)} ms (its bytes at ${fmt(bandwidth / 1e9, 1)} GB/s: ${fmt((perToken(tl, llama) / bandwidth) * 1000, 2)} ms), ${routed.strategy} ${fmt(msPerToken(routed), 2)} ms (bytes: ${fmt((perToken(tr, routed) / bandwidth) * 1000, 2)} ms). ` +
        `For the base alone llama.cpp's decode step is ${fmt(engineGap, 2)}× the runtime's speed (${fmt(stepMs(llamaBase), 1)} against ${fmt(stepMs(baseRow), 1)} ms at ${fmt(llamaBase.mean_decode_batch, 1)} rows). ` +
        `What would close it: ${engineGap > 1 ? 'the engine gap first (the runtime\'s base step is slower than llama.cpp\'s: its products and per-call work, not the adapters), ' : ''}${msPerToken(routed) > (2 * perToken(tr, routed) / bandwidth) * 1000 ? `${routed.strategy}'s per-step work beyond its bytes (gathers and copies: a fused gather-and-multiply kernel)` : `${routed.strategy} is near its bandwidth bound: fewer bytes per step (f16 or 4-bit base weights)`}.`,
    )
  }
  summary.bandwidth_bytes_per_s = bandwidth
}

summary.seconds = seconds
summary.total_seconds = (Date.now() - started) / 1000
writeFileSync(join(outDir, 'summary.json'), `${JSON.stringify(summary, null, 2)}\n`)
console.log(`\n${'='.repeat(100)}\nbench:e2e (${issueSizes ? 'the issue\'s sizes' : 'not the issue\'s sizes: a check of the script, not the targets'}, ${fmt(summary.total_seconds as number, 0)} s; reports in ${outDir})\n`)
console.log(lines.join('\n'))
if (tokensDiffered) {
  console.error('\nbench:e2e: a strategy generated other tokens than the reference (see the rows above)')
  process.exit(1)
}
