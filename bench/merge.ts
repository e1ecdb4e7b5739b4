/**
 * `npm run bench:merge`: merge one rank-16 adapter on all seven projections
 * into a synthetic Llama-style base (hidden 2048, intermediate 5632, 8 layers
 * by default), to f16 and to nf4, with `lora merge` and with NumPy doing the
 * same math (bench/merge.py), side by side in one run; then the quality table
 * (weight_rel_error / delta_snr / adapter_retained) for nf4, q4_0 and int4
 * under merge-then-quantize (a), quantized base + unmerged adapter (b) and
 * re-quantize (c).
 *
 *   npm run bench:merge -- [--hidden 2048] [--intermediate 5632] [--layers 8] [--vocab 32000]
 *                          [--rank 16] [--repeat 1] [--probe 256] [--no-quality] [--work .bench-work/merge]
 *
 * Each timed merge runs in a fresh child process, so its peak RSS is its own.
 * Targets: merge within 1.5× of NumPy, nf4 at least as fast as NumPy, peak RSS
 * under 2× the largest tensor + 200 MB.
 */
import {spawnSync} from 'node:child_process'
import {existsSync, mkdirSync, rmSync, writeFileSync} from 'node:fs'
import {join, resolve} from 'node:path'
import {fileURLToPath} from 'node:url'
import {renderTable} from '../src/cli/table.js'
import {mergeModel} from '../src/core/merge/merge-model.js'
import {SCENARIOS} from '../src/core/merge/quality.js'
import {ALL_PROJECTIONS} from '../src/core/models/llama.js'
import {synthesizeAdapters} from '../src/core/synth/adapters.js'
import {synthesizeBase} from '../src/core/synth/base.js'
import {llamaTensorShapes} from '../src/core/models/llama.js'
import {shapeSize} from '../src/core/shape.js'
import {ROOT, flag} from './script.js'

function arg(name: string, fallback: number): number {
  const i = process.argv.indexOf(`--${name}`)
  return i >= 0 ? Number(process.argv[i + 1]) : fallback
}
function argText(name: string, fallback: string): string {
  return flag(`--${name}`, fallback)
}

interface Timed {
  seconds: number
  max_rss_bytes: number
}

/** Child mode: one merge, timed, with its own peak RSS. */
async function child(): Promise<void> {
  const base = argText('base', '')
  const adapter = argText('adapter', '')
  const out = argText('out', '')
  const mode = argText('mode', 'f16')
  const t0 = performance.now()
  await mergeModel({base, adapters: [{path: adapter}], out, dtype: 'F16', quantize: mode === 'nf4' ? 'nf4' : undefined, quality: false, force: true})
  const seconds = (performance.now() - t0) / 1000
  process.stdout.write(`${JSON.stringify({seconds, max_rss_bytes: process.resourceUsage().maxRSS * 1024})}\n`)
}

function run(command: string, args: string[]): Timed {
  const r = spawnSync(command, args, {encoding: 'utf8', maxBuffer: 1 << 26})
  if (r.status !== 0) throw new Error(`${command} ${args.join(' ')} failed (${r.status}):\n${r.stderr}`)
  return JSON.parse(r.stdout.trim().split('\n').pop()!) as Timed
}

async function main(): Promise<void> {
  const dims = {hidden: arg('hidden', 2048), intermediate: arg('intermediate', 5632), layers: arg('layers', 8), vocab: arg('vocab', 32000)}
  const rank = arg('rank', 16)
  const repeat = arg('repeat', 1)
  const probe = arg('probe', 256)
  const work = resolve(ROOT, argText('work', '.bench-work/merge'))
  const quality = !process.argv.includes('--no-quality')
  mkdirSync(work, {recursive: true})
  const tag = `h${dims.hidden}-i${dims.intermediate}-l${dims.layers}-v${dims.vocab}-r${rank}`
  const base = join(work, `base-${tag}`)
  const adapters = join(work, `adapter-${tag}`)
  const shapes = llamaTensorShapes(dims)
  const parameters = shapes.reduce((s, t) => s + shapeSize(t.shape), 0)
  const largest = Math.max(...shapes.map((t) => shapeSize(t.shape))) * 2
  console.log(`model: hidden ${dims.hidden}, intermediate ${dims.intermediate}, ${dims.layers} layers, vocab ${dims.vocab}: ${(parameters / 1e6).toFixed(1)} M parameters (f16), one rank-${rank} adapter on ${ALL_PROJECTIONS.length} projections`)
  if (!existsSync(base)) {
    const t = performance.now()
    await synthesizeBase({out: base, ...dims, dtype: 'F16', seed: 1})
    console.log(`synthesized base in ${((performance.now() - t) / 1000).toFixed(1)} s`)
  }
  if (!existsSync(adapters)) await synthesizeAdapters({out: adapters, count: 1, ranks: [rank], ...dims, targets: ALL_PROJECTIONS, dtype: 'F16', seed: 1, sharedSubspace: 0})
  const adapter = join(adapters, 'adapter-0000')

  const self = fileURLToPath(import.meta.url)
  const rows: Array<[string, Timed, Timed]> = []
  for (const mode of ['f16', 'nf4'] as const) {
    let ours: Timed | undefined
    let numpy: Timed | undefined
    for (let i = 0; i < repeat; i++) {
      const o = run(process.execPath, [self, '--child', '--base', base, '--adapter', adapter, '--out', join(work, `ours-${mode}`), '--mode', mode])
      rmSync(join(work, `ours-${mode}`), {recursive: true, force: true})
      const n = run('python3', [join(ROOT, 'bench/merge.py'), '--base', base, '--adapter', adapter, '--out', join(work, `numpy-${mode}`), '--mode', mode])
      rmSync(join(work, `numpy-${mode}`), {recursive: true, force: true})
      if (!ours || o.seconds < ours.seconds) ours = o
      if (!numpy || n.seconds < numpy.seconds) numpy = n
    }
    rows.push([mode === 'f16' ? 'merge → f16' : 'merge + nf4', ours!, numpy!])
  }
  const budget = 2 * largest + 200 * 2 ** 20
  const mb = (b: number) => (b / 2 ** 20).toFixed(0)
  console.log(`\nspeed (best of ${repeat}; each run in its own process):`)
  console.log(
    renderTable(
      ['step', 'lora s', 'numpy s', 'lora / numpy', 'target', 'lora Mparam/s', 'numpy Mparam/s', 'lora peak RSS MiB', 'numpy peak RSS MiB'],
      rows.map(([step, o, n]) => [
        step,
        o.seconds.toFixed(2),
        n.seconds.toFixed(2),
        (o.seconds / n.seconds).toFixed(2),
        step.includes('nf4') ? '≤ 1.00' : '≤ 1.50',
        (parameters / o.seconds / 1e6).toFixed(1),
        (parameters / n.seconds / 1e6).toFixed(1),
        mb(o.max_rss_bytes),
        mb(n.max_rss_bytes),
      ]),
    ),
  )
  console.log(`peak RSS budget: 2 × largest tensor (${mb(largest)} MiB) + 200 MiB = ${mb(budget)} MiB; lora worst ${mb(Math.max(...rows.map((r) => r[1].max_rss_bytes)))} MiB`)
  const result: Record<string, unknown> = {dims, rank, parameters, largest_tensor_bytes: largest, rss_budget_bytes: budget, speed: rows.map(([step, o, n]) => ({step, lora: o, numpy: n, ratio: o.seconds / n.seconds}))}

  if (quality) {
    const table: Array<Array<string | number>> = []
    const qualityResult: Record<string, unknown> = {}
    for (const scheme of ['nf4', 'q4_0', 'int4'] as const) {
      const out = join(work, scheme === 'q4_0' ? 'quality.gguf' : `quality-${scheme}`)
      const t = performance.now()
      const r = await mergeModel({base, adapters: [{path: adapter}], out, quantize: scheme, quality: {rows: probe, seed: 0}, force: true})
      const seconds = (performance.now() - t) / 1000
      rmSync(out, {recursive: true, force: true})
      qualityResult[scheme] = {seconds, totals: r.report!.totals}
      for (const s of SCENARIOS) {
        const f = r.report!.totals[s]!
        table.push([scheme, s, f.weight_rel_error!.toFixed(4), f.delta_snr === null ? 'inf' : f.delta_snr.toFixed(4), f.adapter_retained!.toFixed(4), seconds.toFixed(1)])
      }
    }
    console.log(`\nquality (totals over the ${7 * dims.layers} merged tensors; ${probe} N(0, 1) probe rows; a = merge then quantize, b = quantized base + unmerged 16-bit adapter, c = re-quantize):`)
    console.log(renderTable(['scheme', 'scenario', 'weight_rel_error', 'delta_snr', 'adapter_retained', 'merge+report s'], table))
    result.quality = qualityResult
  }
  writeFileSync(join(work, `result-${tag}.json`), `${JSON.stringify(result, null, 2)}\n`)
  console.log(`\nwrote ${join(work, `result-${tag}.json`)}`)
}

if (process.argv.includes('--child')) await child()
else await main()
