/**
 * `npm run bench:serve`: the serving targets of `lora bench` in one run.
 *
 * 1. The five target rows (llama 2048/5632 × 2 layers, 1,000 distinct
 *    adapters): best routed strategy vs base per row, merged in row 1.
 * 2. The mask crossover sweep (adapters 1…1000, one 2048×2048 layer): where
 *    mask's cost crosses gather's; JSON and SVG plot written.
 * 3. Mixed ranks: 8/16/64 padded to 64 against rank 16 only.
 *
 * Every row is a `lora bench` process whose exact command is printed; its
 * JSON report is kept under the work folder. `--quick` runs the same rows at
 * small sizes (a check that the script works, not the targets).
 *
 *   npm run bench:serve [-- --quick] [-- --ep webgpu] [-- --work-dir DIR] [-- --only rows|sweep|ranks]
 */
import {spawnSync} from 'node:child_process'
import {mkdirSync, readFileSync} from 'node:fs'
import {dirname, join, resolve} from 'node:path'
import {fileURLToPath} from 'node:url'
import {renderTable} from '../src/cli/table.js'
import type {BenchReport, BenchResult} from '../src/core/bench/report.js'
import {formatBytes} from '../src/core/units.js'

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '../..')
const args = process.argv.slice(2)
const flag = (name: string) => {
  const i = args.indexOf(name)
  return i >= 0 ? args[i + 1] : undefined
}
const quick = args.includes('--quick')
const ep = flag('--ep') ?? 'cpu'
const only = flag('--only')
const workDir = resolve(flag('--work-dir') ?? join(ROOT, '.bench-work'))
const outDir = join(workDir, quick ? 'serve-quick' : 'serve')
mkdirSync(outDir, {recursive: true})

const MODEL = quick ? ['--hidden', '256', '--intermediate', '704', '--layers', '2'] : ['--hidden', '2048', '--intermediate', '5632', '--layers', '2']
const ADAPTERS = quick ? '100' : '1000'
const COMMON = ['--model', 'llama', ...MODEL, '--workload', 'distinct', '--adapters', ADAPTERS, '--ep', ep, '--work-dir', workDir]

interface Row {
  name: string
  flags: string[]
  target: number
  strategies: string
  timing: string[]
}

const ROWS: Row[] = [
  // one step per turn and many rounds: the order rotates every round, so a busy neighbour hits every strategy alike
  {name: 'decode', flags: ['--batch', '32', '--rank', '16'], target: 0.92, strategies: 'base,gather,segment,shared-b,merged', timing: ['--rounds', '30', '--steps', '1']},
  {name: 'decode, all projections', flags: ['--batch', '32', '--rank', '16', '--targets', 'all'], target: 0.88, strategies: 'base,gather,segment,shared-b', timing: ['--rounds', '30', '--steps', '1']},
  {name: 'decode, rank 64', flags: ['--batch', '32', '--rank', '64'], target: 0.82, strategies: 'base,gather,segment,shared-b', timing: ['--rounds', '30', '--steps', '1']},
  {name: 'decode, batch 8', flags: ['--batch', '8', '--rank', '16'], target: 0.88, strategies: 'base,gather,segment,shared-b', timing: ['--rounds', '40', '--steps', '1']},
  {name: 'prefill 8×128', flags: ['--batch', '8', '--prefill', '128', '--rank', '16'], target: 0.93, strategies: 'base,gather,segment,shared-b', timing: ['--rounds', '6', '--steps', '1']},
]
const ROUTED = ['gather', 'segment', 'shared-b']

/** Run `lora bench` with `flags`, print the exact command, return its report. */
function bench(label: string, flags: string[]): BenchReport {
  const out = join(outDir, `${label}.json`)
  const argv = ['bench', ...flags, '--out', out, '--force']
  console.log(`\n$ lora ${argv.join(' ')}`)
  const started = Date.now()
  const r = spawnSync(process.execPath, [join(ROOT, 'bin/run.js'), ...argv], {stdio: ['ignore', 'inherit', 'inherit'], env: {...process.env, NO_COLOR: '1'}})
  if (r.status !== 0) {
    console.error(`bench:serve: "${label}" exited with ${r.status}`)
    process.exit(r.status ?? 3)
  }
  console.log(`(${((Date.now() - started) / 1000).toFixed(0)} s)`)
  return JSON.parse(readFileSync(out, 'utf8')) as BenchReport
}

const fmt = (v: number | undefined, d = 3) => (v === undefined || !Number.isFinite(v) ? '' : v.toFixed(d))
const find = (report: BenchReport, strategy: string) => report.results.find((r) => r.strategy === strategy)
/** Ratio of medians (p50) to base: the robust twin of relative_to_base (ratio of means). */
const p50Ratio = (report: BenchReport, r: BenchResult | undefined) => (r ? find(report, 'base')!.latency_ms.p50 / r.latency_ms.p50 : undefined)

if (!only || only === 'rows') {
  const reports = ROWS.map((row, i) => bench(`row${i + 1}`, [...COMMON, ...row.flags, '--strategies', row.strategies, ...row.timing]))
  console.log(`\n=== serving targets (${quick ? 'QUICK sizes, not the targets' : `llama 2048/5632 × 2 layers, ${ADAPTERS} distinct adapters`}; ${reports[0]!.config.ep_detail}; ratios = tokens/s ÷ base tokens/s, mean (median)) ===\n`)
  const rows = ROWS.map((row, i) => {
    const report = reports[i]!
    const base = find(report, 'base')!
    const routed = ROUTED.map((s) => find(report, s)).filter((r): r is BenchResult => r !== undefined)
    const best = routed.reduce((a, b) => (b.relative_to_base > a.relative_to_base ? b : a))
    const exact = routed.filter((r) => r.strategy !== 'shared-b').reduce((a, b) => (b.relative_to_base > a.relative_to_base ? b : a))
    const cell = (s: string) => {
      const r = find(report, s)
      return r ? `${fmt(r.relative_to_base)} (${fmt(p50Ratio(report, r))})` : ''
    }
    return [
      row.name,
      fmt(base.tokens_per_s, 0),
      cell('gather'),
      cell('segment'),
      cell('shared-b'),
      cell('merged'),
      `${best.strategy} ${fmt(best.relative_to_base)}`,
      `${exact.strategy} ${fmt(exact.relative_to_base)}`,
      `≥ ${row.target}`,
      best.relative_to_base >= row.target ? 'yes' : 'no',
    ]
  })
  console.log(renderTable(['case', 'base tok/s', 'gather', 'segment', 'shared-b', 'merged', 'best routed', 'best exact', 'target', 'met'], rows))
  const first = reports[0]!
  const merged = find(first, 'merged')
  if (merged) {
    for (const s of ROUTED) {
      const r = find(first, s)
      if (r) console.log(`row 1: ${s} / merged = ${fmt(r.tokens_per_s / merged.tokens_per_s, 1)}× (target ≥ 10×; merged cache C = ${first.config.merged_cache})`)
    }
  }
  reports.forEach((report, i) => {
    const g = find(report, 'gather')
    const s = find(report, 'shared-b')
    if (g && s) console.log(`row ${i + 1}: shared-b (K = ${report.config.shared_k}) / gather = ${fmt(s.tokens_per_s / g.tokens_per_s)} (target ≥ 1)`)
  })
}

if (!only || only === 'sweep') {
  const counts = quick ? '1,4,16,64,256' : '1,4,16,64,256,1000'
  const plot = join(outDir, 'mask-sweep.svg')
  const report = bench('mask-sweep', ['--model', 'layer', '--hidden', quick ? '512' : '2048', '--batch', '32', '--rank', '16', '--workload', 'distinct', '--adapters', counts, '--strategies', 'base,gather,mask', '--ep', ep, '--work-dir', workDir, '--rounds', '20', '--steps', '1', '--plot', plot, '--force'])
  console.log(`\n=== mask crossover (one ${report.config.hidden}×${report.config.hidden} layer, batch 32, rank 16; relative to base) ===\n`)
  const ns = [...new Set(report.results.map((r) => r.adapters))]
  const ratio = (s: string, n: number) => report.results.find((r) => r.strategy === s && r.adapters === n)?.relative_to_base
  console.log(renderTable(['adapters', 'gather', 'mask', 'mask ÷ gather'], ns.map((n) => [n, fmt(ratio('gather', n)), fmt(ratio('mask', n)), fmt(ratio('mask', n)! / ratio('gather', n)!)])))
  const crossing = ns.find((n) => ratio('mask', n)! < ratio('gather', n)!)
  console.log(crossing === undefined ? '\nmask stayed at least as fast as gather over the sweep' : `\nmask falls behind gather from ${crossing} adapters on (plot: ${plot})`)
}

if (!only || only === 'ranks') {
  const flags = [...COMMON, '--batch', '32', '--strategies', 'base,gather', '--rounds', '30', '--steps', '1']
  const mixed = bench('ranks-mixed', [...flags, '--ranks', '8,16,64'])
  const single = bench('ranks-16', [...flags, '--rank', '16'])
  const g = (r: BenchReport) => find(r, 'gather')!
  const trueRankMean = (8 + 16 + 64) / 3
  console.log(`\n=== mixed ranks: 8/16/64 padded to 64 vs rank 16 only (gather, batch 32) ===\n`)
  console.log(renderTable(['pack', 'stack bytes', 'gather vs base', 'gather tok/s'], [
    ['ranks 8/16/64 → 64', formatBytes(g(mixed).weight_bytes - find(mixed, 'base')!.weight_bytes), fmt(g(mixed).relative_to_base), fmt(g(mixed).tokens_per_s, 1)],
    ['rank 16', formatBytes(g(single).weight_bytes - find(single, 'base')!.weight_bytes), fmt(g(single).relative_to_base), fmt(g(single).tokens_per_s, 1)],
  ]))
  console.log(`\npadding: stacks are stored at rank 64 for adapters whose mean true rank is ${trueRankMean.toFixed(1)}: ${fmt(64 / trueRankMean, 2)}× the unpadded bytes (${fmt(100 * (1 - trueRankMean / 64), 1)}% of the mixed pack is zeros)`)
  console.log(`throughput cost of the mixed pack against rank 16 only: gather runs at ${fmt(g(mixed).tokens_per_s / g(single).tokens_per_s)}× the rank-16 pack's tokens/s`)
}
