import {existsSync} from 'node:fs'
import {join} from 'node:path'
import {suite} from 'uvu'
import * as assert from 'uvu/assert'
import {runCli, tempDir} from '../helpers/index.js'

const test = suite('command compress')
const tmp = tempDir('lora-compress-cmd-')
const adapters = join(tmp.path, 'ad')
const pack = join(tmp.path, 'pack.safetensors')

test.before(async () => {
  const s = await runCli(['synth', 'adapters', '--out', adapters, '--count', '4', '--ranks', '2,4', '--hidden', '16', '--intermediate', '24', '--layers', '1', '--shared-subspace', '0.5', '--json'])
  assert.is(s.status, 0, s.stderr)
  const p = await runCli(['pack', adapters, '--out', pack, '--json'])
  assert.is(p.status, 0, p.stderr)
})

test.after(() => tmp.cleanup())

test('--json prints the report alone: modules and totals as the issue shapes them', async () => {
  const out = join(tmp.path, 'k2.safetensors')
  const r = await runCli(['compress', pack, '--out', out, '--rank', '2', '--json'])
  assert.is(r.status, 0, r.stderr)
  assert.is(r.stderr, '')
  const report = JSON.parse(r.stdout)
  assert.equal(Object.keys(report.modules[0]).sort(), ['K', 'R', 'bytes_after', 'bytes_before', 'error_max', 'error_mean', 'name', 'savings_pct'])
  assert.equal(Object.keys(report.totals).sort(), ['bytes_after', 'bytes_before', 'error_max', 'error_mean', 'savings_pct', 'worst_adapter'])
  assert.equal(Object.keys(report.totals.worst_adapter).sort(), ['error', 'module', 'name', 'slot'])
  assert.is(report.modules.length, 4)
  assert.ok(report.modules.every((m: {K: number}) => m.K === 2))
  assert.ok(existsSync(out))
  const i = await runCli(['inspect', out, '--json'])
  assert.is(i.status, 0, i.stderr)
  assert.is(JSON.parse(i.stdout).pack.format, 'lora-pack-shared-b')
  const human = await runCli(['inspect', out])
  assert.is(human.status, 0, human.stderr)
  assert.match(human.stdout, /lora-pack-shared-b v1 by lora-toolkit .*: 4 adapters in 5 slots .*--rank 2/)
  assert.match(human.stdout, /module\s+kind\s+in\s+out\s+R\s+K\s+adapters\s+bytes\s+saved\s+error mean\s+error max/)
  const u = await runCli(['unpack', out, '--slot', '1', '--out', join(tmp.path, 'u1'), '--json'])
  assert.is(u.status, 0, u.stderr)
  assert.is(JSON.parse(u.stdout).exact, false)
})

test('the human report is a table with a total row; --sweep takes adapter folders and writes nothing', async () => {
  const r = await runCli(['compress', pack, '--out', join(tmp.path, 'h.safetensors'), '--max-error', '0.5'])
  assert.is(r.status, 0, r.stderr)
  assert.match(r.stdout, /module\s+R\s+K\s+before\s+after\s+saved\s+error mean\s+error max/)
  assert.match(r.stdout, /\ntotal\s/)
  assert.match(r.stdout, /worst adapter: adapter-000\d/)
  const s = await runCli(['compress', adapters, '--sweep', '--json'])
  assert.is(s.status, 0, s.stderr)
  const sweep = JSON.parse(s.stdout)
  assert.equal(sweep.ranks.slice(0, 2), [1, 2])
  assert.equal(Object.keys(sweep.sweep[0]).sort(), ['K', 'modules', 'totals'])
})

test('bad flags and inputs: exit 2 with one line in both modes, and no output file', async () => {
  const out = join(tmp.path, 'bad.safetensors')
  const cases: Array<[string[], RegExp]> = [
    [[pack, '--out', out, '--rank', '0'], /--rank must be an integer from 1 to 65536 \(got "0"\)/],
    [[pack, '--out', out, '--rank', '99'], /larger than module .* output dim/],
    [[pack, '--out', out, '--max-error', '1.5'], /--max-error must be a number > 0 and < 1 \(got "1\.5"\)/],
    [[pack, '--out', out, '--max-error', 'abc'], /--max-error must be a number > 0 and < 1 \(got "abc"\)/],
    [[pack, '--out', out], /give one of --rank K, --max-error E or --savings PCT/],
    [[pack, '--rank', '2'], /--out FILE is required/],
    [[join(tmp.path, 'ad/adapter-0000/adapter_config.json'), '--out', out, '--rank', '2'], /neither a lora-pack file nor an adapter folder/],
    [[pack, '--out', out, '--rank', '2', '--max-error', '0.1'], /cannot also be provided|--max-error=0.1 cannot/],
  ]
  for (const [args, message] of cases) {
    const plain = await runCli(['compress', ...args])
    assert.is(plain.status, 2, `${args.join(' ')}: ${plain.stderr}`)
    assert.match(plain.stderr, message)
    assert.match(plain.stderr, /^Error: [^\n]+\n$/, 'one line')
    const json = await runCli(['compress', ...args, '--json'])
    assert.is(json.status, 2)
    assert.match(JSON.parse(json.stdout).error.message, message)
    assert.not.ok(existsSync(out))
  }
})

test.run()
