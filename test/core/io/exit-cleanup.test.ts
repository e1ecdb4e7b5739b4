import {spawn} from 'node:child_process'
import {existsSync, mkdirSync, writeFileSync} from 'node:fs'
import {join} from 'node:path'
import {suite} from 'uvu'
import * as assert from 'uvu/assert'
import {CLEANUP_SIGNALS, onExitCleanup, pendingExitCleanups, removeOnExit} from '../../../src/core/io/exit-cleanup.js'
import {REPO_ROOT, tempDir} from '../../helpers/index.js'

const test = suite('io/exit-cleanup')

test('handlers are installed with the first action and removed with the last; a released action never runs', () => {
  const before = pendingExitCleanups()
  const listeners = CLEANUP_SIGNALS.map((s) => process.listenerCount(s))
  let ran = 0
  const releaseA = onExitCleanup(() => ran++)
  const releaseB = onExitCleanup(() => ran++)
  assert.is(pendingExitCleanups(), before + 2)
  for (const s of CLEANUP_SIGNALS) assert.ok(process.listenerCount(s) >= 1, `${s} is handled`)
  releaseA()
  releaseA()
  assert.is(pendingExitCleanups(), before + 1)
  releaseB()
  assert.is(pendingExitCleanups(), before)
  assert.equal(
    CLEANUP_SIGNALS.map((s) => process.listenerCount(s)),
    listeners,
  )
  assert.is(ran, 0)
})

/** Start a child that registers cleanups for `paths`, then wait until it says it is ready. */
async function child(paths: string[], then: string): Promise<{code: number | null; signal: NodeJS.Signals | null}> {
  const script = `
    import {onExitCleanup, removeOnExit} from ${JSON.stringify(join(REPO_ROOT, 'dist/src/core/io/exit-cleanup.js'))}
    for (const p of ${JSON.stringify(paths)}) removeOnExit(p)
    const release = removeOnExit(${JSON.stringify(paths[0])} + '.never')
    release()
    onExitCleanup(() => { throw new Error('a failing action does not stop the others') })
    process.stdout.write('ready\\n')
    ${then}
  `
  const proc = spawn(process.execPath, ['--input-type=module', '-e', script], {stdio: ['ignore', 'pipe', 'inherit']})
  const exited = new Promise<{code: number | null; signal: NodeJS.Signals | null}>((resolve) => proc.once('exit', (code, signal) => resolve({code, signal})))
  await new Promise<void>((resolve) => proc.stdout.once('data', () => resolve()))
  if (then.includes('setInterval')) proc.kill('SIGTERM')
  return exited
}

test('a signal removes every registered path, then ends the process by that signal', async () => {
  const dir = tempDir()
  try {
    const a = join(dir.path, 'a.tmp')
    const b = join(dir.path, 'b.tmp')
    writeFileSync(a, 'x')
    mkdirSync(join(b, 'inner'), {recursive: true})
    writeFileSync(`${a}.never`, 'kept')
    const r = await child([a, b], 'setInterval(() => {}, 1000)')
    assert.equal(r, {code: null, signal: 'SIGTERM'})
    assert.not.ok(existsSync(a))
    assert.not.ok(existsSync(b))
    assert.ok(existsSync(`${a}.never`), 'a released path is left alone')
  } finally {
    dir.cleanup()
  }
})

test('a normal exit removes every registered path too', async () => {
  const dir = tempDir()
  try {
    const a = join(dir.path, 'a.tmp')
    writeFileSync(a, 'x')
    const r = await child([a], 'process.exitCode = 0')
    assert.equal(r, {code: 0, signal: null})
    assert.not.ok(existsSync(a))
  } finally {
    dir.cleanup()
  }
})

test('removeOnExit of a path that is already gone is harmless', () => {
  const release = removeOnExit('/nonexistent/lora-exit-cleanup-test')
  release()
})

test.run()
