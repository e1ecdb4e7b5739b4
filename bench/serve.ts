/**
 * `npm run bench:serve`: the serving targets of `lora bench` in one run.
 *
 * 1. The five target rows (llama 2048/5632 × 2 layers, 1,000 distinct
 *    adapters), in one table: best routed strategy vs base and which won,
 *    the target, shared-b ÷ gather per row (≥ 1), routed ÷ merged in row 1
 *    (≥ 10×).
 * 2. The mask crossover sweep (adapters 1, 4, 16, 64, 256, 1000; one
 *    2048×2048 layer): where mask's throughput falls behind gather's, stated
 *    and marked on the plot (`mask-sweep.svg`).
 * 3. Mixed ranks: 8/16/64 padded to 64 against rank 16 only: padding bytes
 *    and the throughput cost.
 *
 * Every row is a `lora bench` process whose exact command is printed; its
 * JSON report and `summary.json` (every figure printed) are kept under
 * `<work-dir>/serve[-quick]/`. The defaults are the issue's sizes; `--quick`
 * (or the size flags) runs the same rows small, to check the script works.
 * Weight sets this run builds are removed once no later row uses them (at
 * the issue's sizes they take up to ~10 GB each, ~30 GB together);
 * `--keep-weights` keeps them for a rerun.
 *
 * `--stack-dtype f16` stores every row's adapter stacks (and shared-b's A')
 * in f16, gathered in f16 and cast to f32 in the graph (`lora bench
 * --stack-dtype`); its reports go to `serve[-quick]-f16/`. The table says
 * which dtype each row used.
 *
 *   npm run bench:serve [-- --quick] [-- --ep webgpu] [-- --work-dir DIR] [-- --only rows|sweep|ranks] [-- --keep-weights] [-- --stack-dtype f32|f16]
 *                       [-- --hidden H --intermediate I --layers L --adapters N --sweep-hidden H --sweep-adapters 1,4,16 --rounds-scale F]
 */
import {mkdirSync, readFileSync, readdirSync, rmSync, writeFileSync} from 'node:fs'
import {join, resolve} from 'node:path'
import {renderTable} from '../src/cli/table.js'
import {plotTitle} from '../src/core/bench/outputs.js'
import {renderThroughputSvg} from '../src/core/bench/plot.js'
import type {BenchReport} from '../src/core/bench/report.js'
import {bestOf, crossover, describeCrossover, rankPaddingBytes, resultOf} from '../src/core/bench/serve-summary.js'
import {formatBytes} from '../src/core/units.js'
import {ROOT, flag, runLora} from './script.js'

const quick = process.argv.includes('--quick')
const ep = flag('--ep') ?? 'cpu'
const only = flag('--only')
const workDir = resolve(flag('--work-dir') ?? join(ROOT, '.bench-work'))
const hidden = flag('--hidden') ?? (quick ? '256' : '2048')
const intermediate = flag('--intermediate') ?? (quick ? '704' : '5632')
const layers = flag('--layers') ?? '2'
const adapters = flag('--adapters') ?? (quick ? '100' : '1000')
const sweepHidden = flag('--sweep-hidden') ?? (quick ? '512' : '2048')
const sweepAdapters = flag('--sweep-adapters') ?? (quick ? '1,4,16,64,256' : '1,4,16,64,256,1000')
const roundsScale = Number(flag('--rounds-scale') ?? '1')
const stackDtype = flag('--stack-dtype') ?? 'f32'
if (stackDtype !== 'f32' && stackDtype !== 'f16') {
  console.error(`bench:serve: --stack-dtype must be f32 or f16 (got "${stackDtype}")`)
  process.exit(2)
}
const issueSizes = !quick && hidden === '2048' && intermediate === '5632' && layers === '2' && adapters === '1000' && sweepHidden === '2048' && sweepAdapters === '1,4,16,64,256,1000' && roundsScale === 1
const outDir = join(workDir, (issueSizes ? 'serve' : 'serve-quick') + (stackDtype === 'f16' ? '-f16' : ''))
mkdirSync(outDir, {recursive: true})
const keepWeights = process.argv.includes('--keep-weights')
const weightSets = () => readdirSync(workDir).filter((d) => d.startsWith('ws-'))
const earlierSets = new Set(weightSets())
/** Remove the weight sets this run built (no later row needs them). */
function dropWeights(): void {
  if (keepWeights) return
  for (const d of weightSets()) if (!earlierSets.has(d)) rmSync(join(workDir, d), {recursive: true, force: true})
}

const COMMON = ['--model', 'llama', '--hidden', hidden, '--intermediate', intermediate, '--layers', layers, '--workload', 'distinct', '--adapters', adapters, '--shared-k', '16', '--ep', ep, '--work-dir', workDir]
/** One step per turn over many rounds: the order rotates every round, so a busy neighbour hits every strategy alike. */
const timing = (rounds: number) => ['--rounds', String(Math.max(1, Math.round(rounds * roundsScale))), '--steps', '1']

interface Row {
  name: string
  flags: string[]
  target: number
  strategies: string
  rounds: number
}

const ROWS: Row[] = [
  {name: 'decode b32 r16', flags: ['--batch', '32', '--rank', '16'], target: 0.92, strategies: 'base,gather,segment,shared-b,merged', rounds: 30},
  {name: 'decode b32 r16, all projections', flags: ['--batch', '32', '--rank', '16', '--targets', 'all'], target: 0.88, strategies: 'base,gather,segment,shared-b', rounds: 30},
  {name: 'decode b32 r64', flags: ['--batch', '32', '--rank', '64'], target: 0.82, strategies: 'base,gather,segment,shared-b', rounds: 30},
  {name: 'decode b8 r16', flags: ['--batch', '8', '--rank', '16'], target: 0.88, strategies: 'base,gather,segment,shared-b', rounds: 40},
  {name: 'prefill 8×128 r16', flags: ['--batch', '8', '--prefill', '128', '--rank', '16'], target: 0.93, strategies: 'base,gather,segment,shared-b', rounds: 6},
]
/** Strategies that serve distinct adapters in one pass. */
const ROUTED = ['gather', 'segment', 'shared-b']
/** Of those, the ones that serve the adapters exactly (shared-b serves a compressed form). */
const EXACT = ['gather', 'segment']
const MERGED_FACTOR = 10

const started = Date.now()
const seconds: Record<string, number> = {}
const summary: Record<string, unknown> = {sizes: {hidden, intermediate, layers, adapters, sweep_hidden: sweepHidden, sweep_adapters: sweepAdapters, rounds_scale: roundsScale, issue_sizes: issueSizes}, stack_dtype: stackDtype}

/** Run `lora bench` with `flags`, print the exact command, return its report. */
function bench(label: string, flags: string[]): BenchReport {
  const out = join(outDir, `${label}.json`)
  const argv = ['bench', ...flags, '--stack-dtype', stackDtype, '--out', out, '--force']
  const r = runLora(argv)
  if (r.status !== 0) {
    console.error(`bench:serve: "${label}" exited with ${r.status}`)
    process.exit(r.status ?? 3)
  }
  seconds[label] = r.seconds
  console.log(`(${seconds[label]!.toFixed(0)} s)`)
  return JSON.parse(readFileSync(out, 'utf8')) as BenchReport
}

const fmt = (v: number | undefined, d = 3) => (v === undefined || !Number.isFinite(v) ? '' : v.toFixed(d))
const yes = (ok: boolean) => (ok ? 'yes' : 'NO')
const sizeNote = issueSizes ? '' : ' — NOT the issue\'s sizes (a smoke run)'

if (!only || only === 'rows') {
  // rows 1, 4 and 5 share one weight set (rank 16, q/k/v/o): run them together, then drop it
  const reports: BenchReport[] = []
  for (const group of [[0, 3, 4], [1], [2]]) {
    for (const i of group) reports[i] = bench(`row${i + 1}`, [...COMMON, ...ROWS[i]!.flags, '--strategies', ROWS[i]!.strategies, ...timing(ROWS[i]!.rounds)])
    dropWeights()
  }
  console.log(`\n=== serving targets: llama ${hidden}/${intermediate} × ${layers} layers, ${adapters} distinct adapters, shared-b K = 16, adapter stacks ${stackDtype}${sizeNote}; ${reports[0]!.config.ep_detail} ===`)
  console.log('cells: tokens/s ÷ base tokens/s of the same run, mean (median in brackets)\n')
  const rows: Array<Record<string, unknown>> = []
  const table = ROWS.map((row, i) => {
    const report = reports[i]!
    const base = resultOf(report, 'base')!
    const best = bestOf(report, ROUTED)!
    const exact = bestOf(report, EXACT)!
    const gather = resultOf(report, 'gather')
    const shared = resultOf(report, 'shared-b')
    const merged = resultOf(report, 'merged')
    const p50 = (s: string) => {
      const r = resultOf(report, s)
      return r ? base.latency_ms.p50 / r.latency_ms.p50 : undefined
    }
    const cell = (s: string) => (resultOf(report, s) ? `${fmt(resultOf(report, s)!.relative_to_base)} (${fmt(p50(s))})` : '')
    const sharedVsGather = shared && gather ? shared.tokens_per_s / gather.tokens_per_s : undefined
    // the routed ≥ 10× merged check: the slowest routed strategy against merged
    const slowestRouted = merged ? ROUTED.map((s) => resultOf(report, s)).filter((r) => r !== undefined).reduce((a, b) => (b.tokens_per_s < a.tokens_per_s ? b : a)) : undefined
    const vsMerged = merged && slowestRouted ? slowestRouted.tokens_per_s / merged.tokens_per_s : undefined
    rows.push({
      case: row.name,
      flags: row.flags.join(' '),
      stack_dtype: report.config.stack_dtype ?? 'f32',
      base_tokens_per_s: base.tokens_per_s,
      relative_to_base: Object.fromEntries([...ROUTED, 'merged'].filter((s) => resultOf(report, s)).map((s) => [s, resultOf(report, s)!.relative_to_base])),
      median_ratio: Object.fromEntries([...ROUTED, 'merged'].filter((s) => resultOf(report, s)).map((s) => [s, p50(s)])),
      best_routed: {strategy: best.strategy, relative_to_base: best.relative_to_base},
      best_exact: {strategy: exact.strategy, relative_to_base: exact.relative_to_base},
      target: row.target,
      met: best.relative_to_base >= row.target,
      shared_b_vs_gather: sharedVsGather ?? null,
      routed_vs_merged: vsMerged === undefined ? null : {slowest_routed: slowestRouted!.strategy, factor: vsMerged, merged_cache: report.config.merged_cache},
    })
    return [
      row.name,
      report.config.stack_dtype ?? 'f32',
      fmt(base.tokens_per_s, 0),
      cell('gather'),
      cell('segment'),
      cell('shared-b'),
      cell('merged'),
      `${best.strategy} ${fmt(best.relative_to_base)}`,
      `≥ ${row.target}`,
      yes(best.relative_to_base >= row.target),
      `${exact.strategy} ${fmt(exact.relative_to_base)}`,
      sharedVsGather === undefined ? '' : `${fmt(sharedVsGather)} ${yes(sharedVsGather >= 1)}`,
      vsMerged === undefined ? '—' : `${fmt(vsMerged, 1)}× ${yes(vsMerged >= MERGED_FACTOR)}`,
    ]
  })
  console.log(renderTable(['case', 'stacks', 'base tok/s', 'gather', 'segment', 'shared-b', 'merged', 'best routed', 'target', 'met', 'best exact', 'shared-b ÷ gather ≥ 1', `routed ÷ merged ≥ ${MERGED_FACTOR}×`], table))
  console.log(`\nbest routed: the highest of ${ROUTED.join(', ')} (tokens/s ÷ base, mean); best exact leaves out shared-b (a compressed form). routed ÷ merged: the slowest routed strategy's tokens/s ÷ merged's (row 1; merged cache C = ${reports[0]!.config.merged_cache}).`)
  summary.rows = rows
}

if (!only || only === 'sweep') {
  const report = bench('mask-sweep', ['--model', 'layer', '--hidden', sweepHidden, '--batch', '32', '--rank', '16', '--workload', 'distinct', '--adapters', sweepAdapters, '--strategies', 'base,gather,mask', '--ep', ep, '--work-dir', workDir, ...timing(20)])
  dropWeights()
  const c = crossover(report.results, 'mask', 'gather')
  const plot = join(outDir, 'mask-sweep.svg')
  const marker = c.kind === 'between' ? [{adapters: c.at, label: `mask < gather from ≈ ${c.at.toFixed(0)}`}] : []
  writeFileSync(plot, renderThroughputSvg(report.results, plotTitle(report), {markers: marker}))
  console.log(`\n=== mask crossover: one ${sweepHidden}×${sweepHidden} layer, batch 32, rank 16, distinct, adapter stacks ${stackDtype}${sizeNote} ===\n`)
  const ns = [...new Set(report.results.map((r) => r.adapters))]
  const get = (s: string, n: number) => report.results.find((r) => r.strategy === s && r.adapters === n)
  console.log(renderTable(['adapters', 'base tok/s', 'gather vs base', 'mask vs base', 'mask ÷ gather'], ns.map((n) => [n, fmt(get('base', n)?.tokens_per_s, 0), fmt(get('gather', n)?.relative_to_base), fmt(get('mask', n)?.relative_to_base), fmt(get('mask', n)!.tokens_per_s / get('gather', n)!.tokens_per_s)])))
  console.log(`\n${describeCrossover(c, 'mask', 'gather')}; plot: ${plot}`)
  summary.mask_sweep = {crossover: c, statement: describeCrossover(c, 'mask', 'gather'), plot, points: ns.map((n) => ({adapters: n, gather: get('gather', n)?.relative_to_base, mask: get('mask', n)?.relative_to_base}))}
}

if (!only || only === 'ranks') {
  const flags = [...COMMON, '--batch', '32', '--strategies', 'base,gather', ...timing(30)]
  const mixed = bench('ranks-mixed', [...flags, '--ranks', '8,16,64'])
  dropWeights()
  const single = bench('ranks-16', [...flags, '--rank', '16'])
  dropWeights()
  const g = (r: BenchReport) => resultOf(r, 'gather')!
  const stackBytes = (r: BenchReport) => g(r).weight_bytes - resultOf(r, 'base')!.weight_bytes
  const n = mixed.config.adapters[0]!
  const padding = rankPaddingBytes(stackBytes(mixed), mixed.config.ranks, n)
  const cost = g(mixed).relative_to_base / g(single).relative_to_base
  console.log(`\n=== mixed ranks: 8/16/64 (in turn) padded to 64 vs rank 16 only; gather, batch 32, ${n} adapters, adapter stacks ${stackDtype}${sizeNote} ===\n`)
  console.log(renderTable(['pack', 'stack bytes', 'of which padding', 'gather vs base', 'gather tok/s'], [
    ['ranks 8/16/64 → 64', formatBytes(stackBytes(mixed)), `${formatBytes(padding.bytes)} (${fmt(100 * padding.share, 1)}%)`, fmt(g(mixed).relative_to_base), fmt(g(mixed).tokens_per_s, 0)],
    ['rank 16', formatBytes(stackBytes(single)), formatBytes(0), fmt(g(single).relative_to_base), fmt(g(single).tokens_per_s, 0)],
  ]))
  console.log(`\npadding overhead: the mixed pack stores ${formatBytes(stackBytes(mixed))} of stacks for adapters of mean true rank ${fmt(padding.meanRank, 1)}; ${formatBytes(padding.bytes)} (${fmt(100 * padding.share, 1)}%) of it is zero padding, ${fmt(stackBytes(mixed) / stackBytes(single), 2)}× the rank-16 pack's stack bytes`)
  console.log(`throughput cost: gather serves the mixed pack at ${fmt(cost)}× the rank-16 pack's ratio to base (${fmt(100 * (1 - cost), 1)}% slower; ratios to each run's own base, so the two runs compare)`)
  summary.mixed_ranks = {stack_bytes_mixed: stackBytes(mixed), stack_bytes_16: stackBytes(single), padding_bytes: padding.bytes, padding_share: padding.share, mean_true_rank: padding.meanRank, gather_vs_base_mixed: g(mixed).relative_to_base, gather_vs_base_16: g(single).relative_to_base, throughput_ratio: cost}
}

summary.seconds = {...seconds, total: (Date.now() - started) / 1000}
writeFileSync(join(outDir, 'summary.json'), `${JSON.stringify(summary, null, 2)}\n`)
console.log(`\nbench:serve: ${((Date.now() - started) / 1000).toFixed(0)} s in all; reports and summary.json in ${outDir}`)
