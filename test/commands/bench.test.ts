import {existsSync, readFileSync, writeFileSync} from 'node:fs'
import {join} from 'node:path'
import {suite} from 'uvu'
import * as assert from 'uvu/assert'
import {runCli, tempDir} from '../helpers/index.js'

const test = suite('command bench')

const SMALL = ['bench', '--model', 'layer', '--hidden', '32', '--batch', '4', '--rounds', '1', '--steps', '2']

test('--json, --out and --plot: the documented report shape, one SVG series per strategy', async () => {
  const tmp = tempDir()
  try {
    const out = join(tmp.path, 'r.json')
    const plot = join(tmp.path, 'p.svg')
    const r = await runCli([...SMALL, '--adapters', '2,5', '--workload', 'zipf:1.1', '--base-fraction', '0.25', '--json', '--out', out, '--plot', plot])
    assert.is(r.status, 0, r.stderr)
    const report = JSON.parse(r.stdout)
    assert.equal(JSON.parse(readFileSync(out, 'utf8')), report)
    for (const key of ['model', 'hidden', 'intermediate', 'layers', 'rank', 'batch', 'workload', 'ep', 'ep_detail', 'onnxruntime_version']) assert.ok(key in report.config, key)
    assert.is(report.config.model, 'layer')
    assert.is(report.config.workload, 'zipf:1.1')
    assert.is(report.config.ep, 'cpu')
    assert.match(report.config.onnxruntime_version, /^\d+\.\d+\.\d+/)
    const strategies = ['base', 'gather', 'segment', 'shared-b', 'mask', 'merged']
    assert.equal(report.results.map((x: {strategy: string; adapters: number}) => `${x.strategy}@${x.adapters}`), [...strategies.map((s) => `${s}@2`), ...strategies.map((s) => `${s}@5`)])
    for (const x of report.results) {
      assert.equal(Object.keys(x).sort(), ['adapters', 'latency_ms', 'max_abs_error', 'relative_to_base', 'samples', 'strategy', 'tokens_per_s', 'weight_bytes'])
      assert.equal(Object.keys(x.latency_ms).sort(), ['mean', 'p50', 'p99'])
      assert.ok(x.tokens_per_s > 0 && x.samples === 2 && x.max_abs_error < 1e-4 && x.weight_bytes > 0)
      assert.ok(Math.abs(x.tokens_per_s - 4 / (x.latency_ms.mean / 1000)) < 1e-6 * x.tokens_per_s, 'tokens/s = batch / mean latency')
    }
    const base = report.results.filter((x: {strategy: string}) => x.strategy === 'base')
    for (const b of base) assert.is(b.relative_to_base, 1)
    const gather5 = report.results.find((x: {strategy: string; adapters: number}) => x.strategy === 'gather' && x.adapters === 5)
    const base5 = base.find((x: {adapters: number}) => x.adapters === 5)
    assert.ok(Math.abs(gather5.relative_to_base - gather5.tokens_per_s / base5.tokens_per_s) < 1e-9)
    const svg = readFileSync(plot, 'utf8')
    assert.equal([...svg.matchAll(/data-strategy="([^"]+)"/g)].map((m) => m[1]), strategies)
  } finally {
    tmp.cleanup()
  }
})

test('plain output: the table, the model note, exit 0', async () => {
  const r = await runCli([...SMALL, '--adapters', '3', '--strategies', 'gather,shared-b'])
  assert.is(r.status, 0, r.stderr)
  assert.match(r.stdout, /strategy\s+adapters\s+tokens\/s\s+mean ms\s+p50 ms\s+p99 ms\s+vs base\s+weights\s+max_abs_error\s+steps/)
  assert.match(r.stdout, /\nbase\s+3\s/)
  assert.match(r.stdout, /\ngather\s+3\s/)
  assert.match(r.stdout, /\nshared-b\s+3\s/)
  assert.not.match(r.stdout, /\nmask/)
})

test('--stack-dtype f16: every strategy within tolerance, half the stack bytes, said in the report and the table', async () => {
  const args = [...SMALL, '--adapters', '3', '--json']
  const wide = await runCli(args)
  const half = await runCli([...args, '--stack-dtype', 'f16'])
  assert.is(wide.status, 0, wide.stderr)
  assert.is(half.status, 0, half.stderr)
  const [w, h] = [JSON.parse(wide.stdout), JSON.parse(half.stdout)]
  assert.is(w.config.stack_dtype, 'f32')
  assert.is(h.config.stack_dtype, 'f16')
  const bytes = (report: {results: Array<{strategy: string; weight_bytes: number}>}, s: string) => report.results.find((x) => x.strategy === s)!.weight_bytes
  for (const x of h.results) assert.ok(x.max_abs_error < 1e-4, `${x.strategy}: ${x.max_abs_error}`)
  assert.is(bytes(h, 'base'), bytes(w, 'base'))
  for (const s of ['gather', 'segment', 'mask']) assert.is(bytes(h, s) - bytes(h, 'base'), (bytes(w, s) - bytes(w, 'base')) / 2, s)
  const plain = await runCli([...SMALL, '--adapters', '3', '--strategies', 'gather', '--stack-dtype', 'f16'])
  assert.is(plain.status, 0, plain.stderr)
  assert.match(plain.stdout, /adapter stacks f16 \(gathered in f16, cast to f32; products f32\)/)
  const bad = await runCli([...SMALL, '--stack-dtype', 'bf16'])
  assert.is(bad.status, 2)
})

test('--baseline gate: exit 1 when relative_to_base fell by more than --max-regression, in both output modes', async () => {
  const tmp = tempDir()
  try {
    const first = await runCli([...SMALL, '--adapters', '3', '--strategies', 'gather', '--json'])
    assert.is(first.status, 0, first.stderr)
    const report = JSON.parse(first.stdout)
    const baseline = join(tmp.path, 'old.json')
    // inject a regression: the baseline claims gather once ran 1000× faster than base
    for (const x of report.results) if (x.strategy === 'gather') x.relative_to_base = 1000
    writeFileSync(baseline, JSON.stringify(report))
    const plain = await runCli([...SMALL, '--adapters', '3', '--strategies', 'gather', '--baseline', baseline])
    assert.is(plain.status, 1, plain.stderr)
    assert.match(plain.stderr, /^Error: regression against .*old\.json: gather at 3 adapters: relative_to_base [\d.]+ vs baseline [\d.]+ \(fell [\d.]+%, limit 10\.0%\)\n$/)
    const json = await runCli([...SMALL, '--adapters', '3', '--strategies', 'gather', '--baseline', baseline, '--json'])
    assert.is(json.status, 1)
    assert.equal([JSON.parse(json.stdout).error.code, JSON.parse(json.stdout).error.exitCode], ['REGRESSION', 1])
    // a baseline far below any real ratio (a big gain now) passes
    for (const x of report.results) if (x.strategy === 'gather') x.relative_to_base = 1e-6
    writeFileSync(baseline, JSON.stringify(report))
    assert.is((await runCli([...SMALL, '--adapters', '3', '--strategies', 'gather', '--baseline', baseline])).status, 0)
  } finally {
    tmp.cleanup()
  }
})

test('--tolerance gate: exit 1 naming the strategies over it', async () => {
  const r = await runCli([...SMALL, '--adapters', '3', '--strategies', 'gather', '--tolerance', '1e-15'])
  assert.is(r.status, 1, r.stderr)
  assert.match(r.stderr, /^Error: max_abs_error \/ max \|y_ref\| over --tolerance 1e-15: .*gather at 3 adapters/)
})

test('bad flags and files: exit 2, one line, nothing written', async () => {
  const tmp = tempDir()
  try {
    const bad = await runCli([...SMALL, '--strategies', 'gather,teleport'])
    assert.is(bad.status, 2)
    assert.match(bad.stderr, /^Error: --strategies: unknown strategy "teleport" \(expected base, gather, segment, shared-b, mask, merged\)\n$/)
    const missing = await runCli([...SMALL, '--baseline', join(tmp.path, 'nope.json'), '--json'])
    assert.is(missing.status, 2)
    assert.match(JSON.parse(missing.stdout).error.message, /^read baseline .*nope\.json: no such file or directory$/)
    const taken = join(tmp.path, 'taken.json')
    writeFileSync(taken, '{}')
    const exists = await runCli([...SMALL, '--out', taken, '--plot', join(tmp.path, 'p.svg')])
    assert.is(exists.status, 2)
    assert.match(exists.stderr, /already exists \(use --force to replace it\)/)
    assert.not.ok(existsSync(join(tmp.path, 'p.svg')))
    for (const args of [['--workload', 'zipf:-1'], ['--base-fraction', '2'], ['--tolerance', '0'], ['--adapters', '0'], ['--targets', 'x_proj'], ['--pack', 'p', '--model', 'layer']]) {
      const r = await runCli([...SMALL, ...args])
      assert.is(r.status, 2, `${args.join(' ')}: ${r.stderr}`)
      assert.is(r.stderr.trim().split('\n').length, 1, r.stderr)
    }
  } finally {
    tmp.cleanup()
  }
})

test.run()
