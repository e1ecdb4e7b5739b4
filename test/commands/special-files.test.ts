/**
 * Issue 15, why 7: a FIFO or a device where a file is expected is refused at
 * once (exit 2, NOT_A_FILE), never waited on.
 */
import {spawnSync} from 'node:child_process'
import {closeSync, constants, cpSync, existsSync, openSync, rmSync, symlinkSync} from 'node:fs'
import {join} from 'node:path'
import {suite} from 'uvu'
import * as assert from 'uvu/assert'
import {Fixtures} from '../core/errors/fixtures.js'
import {runCli, skipIf, tempDir} from '../helpers/index.js'

const test = suite('commands: FIFOs and devices')
const tmp = tempDir('lora-special-')
const fx = new Fixtures(join(tmp.path, 'fixtures'))
test.after(async () => {
  await fx.close()
  tmp.cleanup()
})

const haveMkfifo = spawnSync('mkfifo', ['--version']).status === 0

/**
 * Run `lora args` in-process. If the command blocked on the FIFO (the bug), a
 * writer opens it after a while so the run ends and the assertions fail,
 * instead of the suite hanging; with the fix the writer is never needed.
 */
async function runBesideFifo(fifo: string, args: string[]) {
  const unblock = setTimeout(() => {
    try {
      closeSync(openSync(fifo, constants.O_WRONLY | constants.O_NONBLOCK))
    } catch {
      // no reader: nothing is blocked
    }
  }, 20_000)
  try {
    return await runCli(args)
  } finally {
    clearTimeout(unblock)
  }
}

skipIf(test, haveMkfifo ? undefined : 'mkfifo is not installed')('a FIFO as adapter_model.safetensors: inspect and pack exit 2 naming it', async () => {
  const dir = join(tmp.path, 'fifo-adapter')
  cpSync(await fx.adapter(), dir, {recursive: true})
  const fifo = join(dir, 'adapter_model.safetensors')
  rmSync(fifo)
  assert.is(spawnSync('mkfifo', [fifo]).status, 0)
  for (const args of [['inspect', dir], ['pack', dir, '--out', join(tmp.path, 'p.safetensors')], ['merge', '--base', await fx.base(), '--adapter', dir, '--out', join(tmp.path, 'm')]]) {
    const r = await runBesideFifo(fifo, args)
    assert.is(r.status, 2, `${args[0]}: ${r.stderr}`)
    assert.is(r.stderr, `Error: read ${fifo}: a named pipe (FIFO), not a regular file\n`)
  }
  assert.not.ok(existsSync(join(tmp.path, 'p.safetensors')))
})

skipIf(test, haveMkfifo ? undefined : 'mkfifo is not installed')('a FIFO as adapter_config.json, as a --list file, as a --baseline: exit 2', async () => {
  const dir = join(tmp.path, 'fifo-config')
  cpSync(await fx.adapter(), dir, {recursive: true})
  const fifo = join(dir, 'adapter_config.json')
  rmSync(fifo)
  assert.is(spawnSync('mkfifo', [fifo]).status, 0)
  const inspect = await runBesideFifo(fifo, ['inspect', dir, '--json'])
  assert.is(JSON.parse(inspect.stdout).error.code, 'NOT_A_FILE')
  const list = join(tmp.path, 'list.fifo')
  assert.is(spawnSync('mkfifo', [list]).status, 0)
  const pack = await runBesideFifo(list, ['pack', '--list', list, '--out', join(tmp.path, 'q.safetensors'), '--json'])
  assert.is(JSON.parse(pack.stdout).error.code, 'NOT_A_FILE')
  const bench = await runBesideFifo(list, ['bench', '--model', 'layer', '--hidden', '8', '--adapters', '2', '--baseline', list, '--json'])
  assert.is(JSON.parse(bench.stdout).error.code, 'BASELINE_UNREADABLE')
  assert.match(JSON.parse(bench.stdout).error.message, /a named pipe \(FIFO\), not a regular file/)
})

test('a character device as adapter_model.safetensors (a link to /dev/zero): exit 2', async () => {
  const dir = join(tmp.path, 'device')
  cpSync(await fx.adapter(), dir, {recursive: true})
  rmSync(join(dir, 'adapter_model.safetensors'))
  symlinkSync('/dev/zero', join(dir, 'adapter_model.safetensors'))
  const r = await runCli(['inspect', dir])
  assert.is(r.status, 2)
  assert.match(r.stderr, /a character device, not a regular file/)
})

test.run()
