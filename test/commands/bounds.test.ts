/**
 * Issue 15, why 6: sizes no machine holds are refused up front with the
 * estimate, before anything is allocated or written (no work folder, no
 * output, no temporary), never a native abort or an internal error.
 */
import {mkdirSync, readdirSync} from 'node:fs'
import {join} from 'node:path'
import {suite} from 'uvu'
import * as assert from 'uvu/assert'
import {Fixtures} from '../core/errors/fixtures.js'
import {runCli, tempDir} from '../helpers/index.js'

const test = suite('commands: resource bounds')
const tmp = tempDir('lora-bounds-')
const fx = new Fixtures(join(tmp.path, 'fixtures'))
test.after(async () => {
  await fx.close()
  tmp.cleanup()
})

let n = 0
/** Run with TMPDIR and the outputs in a fresh empty folder; the refusal must leave it empty. */
async function refusedUpFront(args: (dir: string) => Promise<string[]> | string[], code: string, estimate: RegExp): Promise<void> {
  const dir = join(tmp.path, `case${n++}`)
  mkdirSync(dir)
  const r = await runCli([...(await args(dir)), '--json'], {env: {TMPDIR: dir}})
  assert.is(r.status, 2, r.stdout + r.stderr)
  const error = JSON.parse(r.stdout).error
  assert.is(error.code, code, error.message)
  assert.match(error.message, estimate)
  assert.equal(readdirSync(dir), [], 'nothing written before the refusal')
}

test('bench --adapters 100000000 and 1000000000: the weight set\'s bytes against the free disk', async () => {
  await refusedUpFront(() => ['bench', '--adapters', '100000000'], 'NOT_ENOUGH_DISK', /^bench: the weight set of 100000000 adapters needs 143\.05 TiB on .*, [\d.]+ [KMGT]?i?B free$/)
  await refusedUpFront(() => ['bench', '--adapters', '1000000000'], 'NOT_ENOUGH_DISK', /needs 1430\.51 TiB on /)
  await refusedUpFront((dir) => ['bench', '--adapters', '1,100000000', '--work-dir', join(dir, 'w')], 'NOT_ENOUGH_DISK', /the weight set of 1 adapters and the weight set of 100000000 adapters need /)
})

test('bench --batch 1000000000: the inputs do not fit in memory', async () => {
  await refusedUpFront(() => ['bench', '--batch', '1000000000'], 'NOT_ENOUGH_MEMORY', /the inputs \(1000000000 rows × 512\) needs/)
})

test('merge --probe 100000000: the probe rows do not fit in memory', async () => {
  await refusedUpFront(async (dir) => ['merge', '--base', await fx.base(), '--adapter', await fx.adapter(), '--out', join(dir, 'm'), '--probe', '100000000'], 'NOT_ENOUGH_MEMORY', /^merge .*: --probe 100000000 rows needs/)
})

test('synth adapters --count 1000000000 and synth base of a trillion parameters: refused on disk', async () => {
  await refusedUpFront((dir) => ['synth', 'adapters', '--out', join(dir, 'a'), '--count', '1000000000'], 'NOT_ENOUGH_DISK', /1000000000 adapters needs 488\.01 TiB on /)
  await refusedUpFront((dir) => ['synth', 'base', '--out', join(dir, 'b'), '--hidden', '100000', '--intermediate', '400000', '--layers', '1000'], 'NOT_ENOUGH_DISK', /the base model needs [\d.]+ TiB on /)
})

test('bench --e2e: a synthetic model, requests or adapter tables no machine holds (a native abort and an internal error before)', async () => {
  await refusedUpFront(() => ['bench', '--e2e', '--requests', '1000000', '--prompt-tokens', '2147483647'], 'CONTEXT_TOO_LONG', /needs 2147483775 positions/)
  await refusedUpFront(() => ['bench', '--e2e', '--hidden', '1048576', '--layers', '1024', '--vocab', '16777216'], 'NOT_ENOUGH_MEMORY', /the synthetic model \(hidden 1048576, 1024 layers, vocabulary 16777216\) needs one array of 64\.00 TiB/)
  await refusedUpFront(() => ['bench', '--e2e', '--adapters', '2000000000', '--hidden', '64', '--layers', '1', '--vocab', '64'], 'NOT_ENOUGH_MEMORY', /the tables of 2000000000 adapters need about [\d.]+ GiB of JavaScript heap/)
})

test.run()
