import {existsSync, readFileSync} from 'node:fs'
import {join} from 'node:path'
import {suite} from 'uvu'
import * as assert from 'uvu/assert'
import {runCli, tempDir} from '../helpers/index.js'
import {normal, randomModule, writeBase, writeLora} from '../helpers/merge-fixtures.js'

const test = suite('commands/merge')

const dir = tempDir('lora-merge-cmd-')
const base = join(dir.path, 'base')
const adapter = join(dir.path, 'ad')

test.before(async () => {
  await writeBase(base, [
    {name: 'model.layers.0.q_proj.weight', shape: [64, 64], values: normal(64 * 64, 0.125, 'q')},
    {name: 'model.layers.0.up_proj.weight', shape: [96, 64], values: normal(96 * 64, 0.125, 'u')},
  ])
  await writeLora(adapter, [randomModule('model.layers.0.q_proj', 64, 64, 4, 'c'), randomModule('model.layers.0.up_proj', 64, 96, 4, 'c')], {r: 4, alpha: 8})
})
test.after(() => dir.cleanup())

test('--json: the result with the quality report shaped {tensors: [{name, (a), (b), (c)}], totals}, and a report file', async () => {
  const out = join(dir.path, 'o1')
  const report = join(dir.path, 'o1.json')
  const r = await runCli(['merge', '--base', base, '--adapter', adapter, '--out', out, '--quantize', 'nf4', '--probe', '32', '--report', report, '--json'])
  assert.is(r.status, 0, r.stderr)
  const json = JSON.parse(r.stdout)
  assert.is(json.quantize, 'nf4')
  assert.equal(json.merged.map((m: {name: string}) => m.name), ['model.layers.0.q_proj.weight', 'model.layers.0.up_proj.weight'])
  const rep = json.report
  assert.equal(Object.keys(rep.tensors[0]).sort(), ['merge_then_quantize', 'name', 'quantized', 'quantized_base_unmerged', 'requantize'])
  assert.equal(Object.keys(rep.totals).sort(), ['merge_then_quantize', 'quantized_base_unmerged', 'requantize'])
  assert.equal(Object.keys(rep.totals.requantize).sort(), ['adapter_retained', 'delta_snr', 'weight_rel_error'])
  assert.equal(JSON.parse(readFileSync(report, 'utf8')), rep)
  assert.ok(existsSync(join(out, 'model.safetensors')))
})

test('--max-loss: exit 1 when breached (both output modes, output and report still written), 0 otherwise', async () => {
  const plain = await runCli(['merge', '--base', base, '--adapter', adapter, '--out', join(dir.path, 'g1'), '--quantize', 'int4', '--group-size', '32', '--probe', '16', '--max-loss', '0.01', '--report', join(dir.path, 'g1.json')])
  assert.is(plain.status, 1, plain.stderr)
  assert.match(plain.stderr, /^Error: --max-loss 0\.01: 2 merged tensors keep less than 0\.99 of the adapter \(worst: /m)
  assert.match(plain.stdout, /\(a\) retained/)
  assert.ok(existsSync(join(dir.path, 'g1')) && existsSync(join(dir.path, 'g1.json')))
  const json = await runCli(['merge', '--base', base, '--adapter', adapter, '--out', join(dir.path, 'g2'), '--quantize', 'int4', '--group-size', '32', '--probe', '16', '--max-loss', '0.01', '--json'])
  assert.is(json.status, 1)
  const parsed = JSON.parse(json.stdout)
  assert.is(parsed.error.code, 'MAX_LOSS_EXCEEDED')
  assert.is(parsed.error.exitCode, 1)
  assert.is(parsed.gate.passed, false)
  assert.ok(parsed.report.tensors.length === 2)
  const ok = await runCli(['merge', '--base', base, '--adapter', adapter, '--out', join(dir.path, 'g3'), '--probe', '16', '--max-loss', '0.01', '--json'])
  assert.is(ok.status, 0, ok.stderr)
  assert.is(JSON.parse(ok.stdout).gate.passed, true)
})

test('bad input exits 2 with one line naming the problem, and leaves no output folder', async () => {
  const out = join(dir.path, 'bad')
  const missing = await runCli(['merge', '--base', join(dir.path, 'nope'), '--adapter', adapter, '--out', out])
  assert.is(missing.status, 2)
  assert.match(missing.stderr, /^Error: read .*nope: no such file or directory\n$/)
  const weights = await runCli(['merge', '--base', base, '--adapter', adapter, '--weight', '1', '--weight', '2', '--out', out, '--json'])
  assert.is(weights.status, 2)
  assert.match(JSON.parse(weights.stdout).error.message, /2 --weight values for 1 --adapter folders/)
  assert.not.ok(existsSync(out))
})

test.run()
