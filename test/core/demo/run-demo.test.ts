import {existsSync, mkdirSync, readFileSync, readdirSync, statSync} from 'node:fs'
import {OUTPUT_MARKER} from '../../../src/core/io/output-target.js'
import {join} from 'node:path'
import {suite} from 'uvu'
import * as assert from 'uvu/assert'
import {DEMO_SIZES} from '../../../src/core/demo/settings.js'
import {DEMO_STEPS, DemoReport, runDemo} from '../../../src/core/demo/run-demo.js'
import {SafetensorsFile} from '../../../src/core/formats/safetensors-file.js'
import {projectionShape} from '../../../src/core/models/llama.js'
import {tempDir} from '../../helpers/index.js'

const test = suite('demo run-demo')

const SETTINGS = DEMO_SIZES.small
const tmp = tempDir()
const OUT = join(tmp.path, 'demo')
let report: DemoReport
const events: string[] = []

test.before(async () => {
  report = await runDemo({
    out: OUT,
    settings: SETTINGS,
    seed: 3,
    observer: {
      start: (info) => events.push(`start ${info.out} ${info.kept}`),
      begin: (step) => events.push(`begin ${step}`),
      end: (step, r) => events.push(`end ${step} ${typeof r.seconds}`),
    },
  })
})

test.after(() => tmp.cleanup())

function diskBytes(path: string): number {
  const st = statSync(path)
  return st.isDirectory() ? readdirSync(path).reduce((s, n) => s + diskBytes(join(path, n)), 0) : st.size
}

test('the full size is the demo the issue asks for', () => {
  const f = DEMO_SIZES.full
  assert.is(f.adapters, 64)
  assert.equal([...f.ranks], [8, 16, 32])
  assert.ok(f.sharedSubspace > 0 && f.sharedSubspace < 1)
  assert.equal([...f.bench.counts], [1, 16, 64])
  assert.equal([...f.schemes], ['nf4', 'q4_0'])
  assert.ok(f.bench.strategies.includes('shared-b'))
})

test('the observer hears every step begin and end, in order', () => {
  assert.equal(events, [`start ${OUT} true`, ...DEMO_STEPS.flatMap((s) => [`begin ${s}`, `end ${s} number`])])
})

test('--out keeps every artifact, and only those', () => {
  assert.equal([report.out, report.kept, report.seed], [OUT, true, 3])
  assert.equal(readdirSync(OUT).sort(), ['adapters', 'base', 'bench.json', 'bench.svg', 'merged-nf4', 'merged-q4_0.gguf', 'pack.safetensors', 'shared-b.safetensors'])
  assert.equal(readdirSync(join(OUT, 'adapters')).filter((n) => n !== OUTPUT_MARKER).length, SETTINGS.adapters)
  assert.ok(existsSync(join(OUT, 'base', 'model.safetensors')) && existsSync(join(OUT, 'base', 'config.json')))
})

test('pack: the reported bytes are the file\'s, and the rank padding is Σ (R − r)(in + out) · 2 bytes', () => {
  const p = report.steps.pack
  const size = statSync(join(OUT, 'pack.safetensors')).size
  assert.equal([p.result.bytes_out, p.bytes.file], [size, size])
  assert.equal([p.result.adapters, p.result.slots], [SETTINGS.adapters, SETTINGS.adapters + 1])
  const R = Math.max(...SETTINGS.ranks)
  let rankPadding = 0
  let nullSlot = 0
  for (const t of SETTINGS.targets) {
    const [out, inp] = projectionShape(SETTINGS, t)
    for (let i = 0; i < SETTINGS.adapters; i++) rankPadding += (R - SETTINGS.ranks[i % SETTINGS.ranks.length]!) * (inp + out) * 2 * SETTINGS.layers
    nullSlot += R * (inp + out) * 2 * SETTINGS.layers
  }
  assert.equal([p.bytes.rank_padding, p.bytes.null_slot, p.bytes.empty_slots], [rankPadding, nullSlot, 0])
  assert.is(p.result.padding_bytes, rankPadding + nullSlot)
  assert.equal([p.R, p.ranks], [R, [...SETTINGS.ranks]])
})

test('compress: K follows the stated rule over the sweep, and the file holds B_shared [out, K] per module', async () => {
  const c = report.steps.compress
  const expected = c.sweep.sweep.find((row) => row.totals.savings_pct > 0 && row.totals.error_max <= SETTINGS.maxError)
  assert.ok(expected, 'the small demo has a K within the bound')
  assert.equal([c.choice.K, c.choice.met], [expected!.K, true])
  const path = join(OUT, 'shared-b.safetensors')
  assert.is(c.file_bytes, statSync(path).size)
  assert.is(c.result.out, path)
  const file = await SafetensorsFile.open(path)
  try {
    assert.is(file.metadata.get('format'), 'lora-pack-shared-b')
    const S = SETTINGS.adapters + 1
    let after = 0
    for (let layer = 0; layer < SETTINGS.layers; layer++) {
      for (const t of SETTINGS.targets) {
        const [out, inp] = projectionShape(SETTINGS, t)
        const name = `model.layers.${layer}.self_attn.${t}`
        assert.equal(file.tensors.get(`${name}.lora_B_shared`)?.shape, [out, c.choice.K], name)
        assert.equal(file.tensors.get(`${name}.lora_A`)?.shape, [S, c.choice.K, inp], name)
        after += c.choice.K * (S * inp + out) * 2
      }
    }
    assert.is(c.result.totals.bytes_after, after)
    assert.ok(c.result.totals.error_max <= SETTINGS.maxError)
  } finally {
    await file.close()
  }
})

test('merge: the first adapter of the largest rank, one output per scheme, each with the three-scenario quality totals', () => {
  const m = report.steps.merge
  const R = Math.max(...SETTINGS.ranks)
  assert.equal([m.adapter.name, m.adapter.r], [`adapter-${String(SETTINGS.ranks.indexOf(R)).padStart(4, '0')}`, R])
  assert.equal(m.runs.map((r) => r.scheme), [...SETTINGS.schemes])
  for (const run of m.runs) {
    const totals = run.result.report!.totals
    for (const s of ['merge_then_quantize', 'quantized_base_unmerged', 'requantize'] as const) assert.ok(totals[s] && totals[s]!.weight_rel_error! > 0, `${run.scheme} ${s}`)
    assert.is(run.result.merged.length, SETTINGS.layers * SETTINGS.targets.length)
  }
  const nf4 = JSON.parse(readFileSync(join(OUT, 'merged-nf4', 'config.json'), 'utf8'))
  assert.is(nf4.quantization_config.bnb_4bit_quant_type, 'nf4')
  assert.is(readFileSync(join(OUT, 'merged-q4_0.gguf')).subarray(0, 4).toString('latin1'), 'GGUF')
})

test('bench: every count × strategy, the report on disk, one SVG series per strategy, shared-b at the chosen K', () => {
  const b = report.steps.bench
  assert.equal(JSON.parse(readFileSync(b.json, 'utf8')), b.report)
  assert.equal(b.report.results.map((r) => `${r.strategy}@${r.adapters}`), SETTINGS.bench.counts.flatMap((n) => SETTINGS.bench.strategies.map((s) => `${s}@${n}`)))
  assert.is(b.report.config.shared_k, report.steps.compress.choice.K)
  assert.match(b.report.config.weights, /base .*base/)
  const svg = readFileSync(b.plot, 'utf8')
  assert.equal([...svg.matchAll(/data-strategy="([^"]+)"/g)].map((m) => m[1]), [...SETTINGS.bench.strategies])
})

test('summary: file sizes measured on disk; takeaways carry the steps\' own figures', () => {
  for (const f of report.summary.files) assert.is(f.bytes, diskBytes(join(OUT, f.name)), f.name)
  const t = report.summary.takeaways
  const c = report.steps.compress
  assert.ok(t.compress.includes(`K = ${c.choice.K}`) && t.compress.includes(`${c.result.totals.savings_pct.toFixed(1)}% saved`), t.compress)
  assert.ok(t.pack.includes(`${(100 * report.steps.pack.bytes.padding_share).toFixed(1)}% of it is zeros`), t.pack)
  const top = Math.max(...SETTINGS.bench.counts)
  for (const r of report.steps.bench.report.results.filter((x) => x.adapters === top && x.strategy !== 'base')) assert.ok(t.bench.includes(`${r.strategy} ${r.relative_to_base.toFixed(2)}×`), t.bench)
  assert.ok(t.merge.startsWith(`${report.steps.merge.adapter.name} (r = ${report.steps.merge.adapter.r})`), t.merge)
})

test('without --out, the temporary folder is gone when runDemo resolves', async () => {
  const r = await runDemo({settings: SETTINGS})
  assert.is(r.kept, false)
  assert.not.ok(existsSync(r.out))
  assert.is(r.summary.files.length, 8)
})

test('a non-empty --out is refused before any work', async () => {
  let error: (Error & {code?: string}) | undefined
  try {
    await runDemo({out: OUT, settings: SETTINGS})
  } catch (e) {
    error = e as Error & {code?: string}
  }
  assert.is(error?.code, 'OUTPUT_EXISTS')
})

test('a step that fails removes what the run wrote: a new --out folder entirely, an existing one back to empty', async () => {
  const broken = {...SETTINGS, bench: {...SETTINGS.bench, mergedCache: 0}}
  const fresh = join(tmp.path, 'fresh')
  const error = await runDemo({out: fresh, settings: broken}).catch((e: Error & {code?: string}) => e)
  assert.is((error as {code?: string}).code, 'BAD_FLAG')
  assert.not.ok(existsSync(fresh))
  const empty = join(tmp.path, 'empty')
  mkdirSync(empty)
  await runDemo({out: empty, settings: broken}).catch(() => undefined)
  assert.equal(readdirSync(empty), [])
})

test.run()
