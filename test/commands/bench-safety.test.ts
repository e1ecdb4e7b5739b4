/**
 * Issue 15, whys 4 and 7 for bench and compress: a baseline of another
 * configuration is refused (exit 2, the fields named) before anything is
 * measured; a reused --work-dir weight set is checked and a damaged one
 * rebuilt; compress refuses to write a file larger than its input.
 */
import {existsSync, mkdirSync, readFileSync, readdirSync, truncateSync, writeFileSync} from 'node:fs'
import {join} from 'node:path'
import {suite} from 'uvu'
import * as assert from 'uvu/assert'
import {Fixtures} from '../core/errors/fixtures.js'
import {REAL_ADAPTERS, realAdaptersMissing, runCli, skipIf, tempDir} from '../helpers/index.js'

const test = suite('commands: bench baselines and work folders, compress growth')
const tmp = tempDir('lora-bench-safety-')
const fx = new Fixtures(join(tmp.path, 'fixtures'))
test.after(async () => {
  await fx.close()
  tmp.cleanup()
})

const LAYER = ['bench', '--model', 'layer', '--hidden', '8', '--adapters', '2', '--strategies', 'gather', '--rounds', '1', '--steps', '1', '--batch', '2']

test('--baseline of another configuration: exit 2 naming the differing fields, before anything is built', async () => {
  const report = JSON.parse((await runCli([...LAYER, '--json'])).stdout)
  report.config.batch = 64
  report.config.threads = 8
  const baseline = join(tmp.path, 'other.json')
  writeFileSync(baseline, JSON.stringify(report))
  const work = join(tmp.path, 'work-baseline')
  const plain = await runCli([...LAYER, '--baseline', baseline, '--work-dir', work])
  assert.is(plain.status, 2, plain.stderr)
  assert.match(plain.stderr, /^Error: --baseline .*other\.json measured another configuration: batch \(this run 2, baseline 64\), threads \(this run 2, baseline 8\); compare runs of the same configuration\n$/)
  const json = await runCli([...LAYER, '--baseline', baseline, '--work-dir', work, '--json'])
  assert.is(JSON.parse(json.stdout).error.code, 'BASELINE_MISMATCH')
  assert.not.ok(existsSync(work), 'no weight set was built')
})

test('--work-dir: a truncated or damaged weights.bin is rebuilt, not reused', async () => {
  const work = join(tmp.path, 'work')
  const first = await runCli([...LAYER, '--work-dir', work, '--json'])
  assert.is(first.status, 0, first.stderr)
  const [set] = readdirSync(work).filter((e) => e.startsWith('ws-'))
  const data = join(work, set!, 'weights.bin')
  const good = readFileSync(data)
  const index = JSON.parse(readFileSync(join(work, set!, 'index.json'), 'utf8'))
  assert.is(index.data.bytes, good.length)
  // a partial file (a full disk): shorter than recorded
  truncateSync(data, Math.floor(good.length / 2))
  assert.is((await runCli([...LAYER, '--work-dir', work, '--json'])).status, 0)
  assert.equal(readFileSync(data), good, 'rebuilt whole')
  // the right size, wrong bytes at the end (sparse preallocation the writes never reached)
  const damaged = Buffer.from(good)
  damaged.fill(0, damaged.length - 16)
  writeFileSync(data, damaged)
  assert.is((await runCli([...LAYER, '--work-dir', work, '--json'])).status, 0)
  assert.equal(readFileSync(data), good, 'rebuilt whole')
  assert.equal(readdirSync(work).filter((e) => e.startsWith('.')), [], 'no temporaries left')
})

test('compress writes no file larger than its input unless --allow-growth', async () => {
  const dir = join(tmp.path, 'growth')
  mkdirSync(dir)
  const out = join(dir, 'c.safetensors')
  const refused = await runCli(['compress', await fx.pack(), '--rank', '8', '--out', out])
  assert.is(refused.status, 2)
  assert.match(refused.stderr, /^Error: compress .*c\.safetensors: at the K chosen \(K = \d+\) the shared-B file would be [\d.]+ KiB, \d+% larger than the input's [\d.]+ KiB; choose a smaller K \(--rank, --savings\) or pass --allow-growth\n$/)
  assert.not.ok(existsSync(out))
  assert.is((await runCli(['compress', await fx.pack(), '--rank', '8', '--out', out, '--allow-growth'])).status, 0)
  assert.ok(existsSync(out))
})

skipIf(test, realAdaptersMissing())('the issue\'s case: two real GPT-2 adapters at --max-error 0.05 would grow 39%: refused', async () => {
  const out = join(tmp.path, 'gpt2.safetensors')
  const inputs = [join(REAL_ADAPTERS, 'gpt2-r4a1-cattn-cproj'), join(REAL_ADAPTERS, 'gpt2-r4a16-cattn-cproj')]
  const r = await runCli(['compress', ...inputs, '--max-error', '0.05', '--out', out, '--json'])
  assert.is(r.status, 2)
  const error = JSON.parse(r.stdout).error
  assert.is(error.code, 'COMPRESS_GROWS')
  assert.match(error.message, /39% larger than the input's/)
  assert.not.ok(existsSync(out))
})

test.run()
