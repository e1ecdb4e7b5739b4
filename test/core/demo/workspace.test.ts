import {existsSync, mkdirSync, readdirSync, writeFileSync} from 'node:fs'
import {join} from 'node:path'
import {suite} from 'uvu'
import * as assert from 'uvu/assert'
import {DemoWorkspace} from '../../../src/core/demo/workspace.js'
import {pendingExitCleanups} from '../../../src/core/io/exit-cleanup.js'
import {tempDir} from '../../helpers/index.js'

const test = suite('demo workspace')

function thrown(fn: () => unknown): Error & {code?: string; exitCode?: number} {
  try {
    fn()
  } catch (error) {
    return error as Error & {code?: string; exitCode?: number}
  }
  throw new Error('expected an error')
}

test('no --out: a temporary folder, removed by finish()', () => {
  const ws = DemoWorkspace.open()
  assert.is(ws.kept, false)
  writeFileSync(ws.wrote('a.txt'), 'x')
  assert.ok(existsSync(ws.path('a.txt')))
  ws.finish()
  assert.not.ok(existsSync(ws.dir))
})

test('no --out: discard() removes the temporary folder too', () => {
  const ws = DemoWorkspace.open()
  writeFileSync(ws.wrote('a.txt'), 'x')
  ws.discard()
  assert.not.ok(existsSync(ws.dir))
})

test('--out NEW: created, kept by finish(), removed whole by discard()', () => {
  const tmp = tempDir()
  try {
    const out = join(tmp.path, 'new', 'demo')
    const kept = DemoWorkspace.open({out})
    assert.equal([kept.dir, kept.kept], [out, true])
    writeFileSync(kept.wrote('a.txt'), 'x')
    kept.finish()
    assert.equal(readdirSync(out), ['a.txt'])
    const other = join(tmp.path, 'other')
    const failed = DemoWorkspace.open({out: other})
    writeFileSync(failed.wrote('a.txt'), 'x')
    failed.discard()
    assert.not.ok(existsSync(other))
  } finally {
    tmp.cleanup()
  }
})

test('--out EMPTY is accepted; a failed run leaves it empty but in place', () => {
  const tmp = tempDir()
  try {
    const ws = DemoWorkspace.open({out: tmp.path})
    writeFileSync(ws.wrote('a.txt'), 'x')
    ws.discard()
    assert.ok(existsSync(tmp.path))
    assert.equal(readdirSync(tmp.path), [])
  } finally {
    tmp.cleanup()
  }
})

test('--out NON-EMPTY is refused without force (OUTPUT_EXISTS, exit 2)', () => {
  const tmp = tempDir()
  try {
    writeFileSync(join(tmp.path, 'mine.txt'), 'keep me')
    const error = thrown(() => DemoWorkspace.open({out: tmp.path}))
    assert.equal([error.code, error.exitCode], ['OUTPUT_EXISTS', 2])
    assert.match(error.message, /not empty.*--force/)
  } finally {
    tmp.cleanup()
  }
})

test('--out NON-EMPTY with force: a failed run removes only what it wrote', () => {
  const tmp = tempDir()
  try {
    writeFileSync(join(tmp.path, 'mine.txt'), 'keep me')
    mkdirSync(join(tmp.path, 'base'))
    const ws = DemoWorkspace.open({out: tmp.path, force: true})
    writeFileSync(ws.wrote('pack.safetensors'), 'x')
    writeFileSync(ws.path('unfinished'), 'x')
    ws.discard()
    assert.equal(readdirSync(tmp.path).sort(), ['base', 'mine.txt', 'unfinished'])
  } finally {
    tmp.cleanup()
  }
})

test('--out FILE is refused (OUTPUT_NOT_DIR)', () => {
  const tmp = tempDir()
  try {
    const file = join(tmp.path, 'f')
    writeFileSync(file, 'x')
    assert.is(thrown(() => DemoWorkspace.open({out: file})).code, 'OUTPUT_NOT_DIR')
  } finally {
    tmp.cleanup()
  }
})

test('signal handlers are released when the run ends', () => {
  const before = pendingExitCleanups()
  const listeners = process.listenerCount('SIGINT')
  const ws = DemoWorkspace.open()
  assert.is(pendingExitCleanups(), before + 1)
  assert.ok(process.listenerCount('SIGINT') >= 1, 'a SIGINT handler is installed while the workspace lives')
  ws.finish()
  assert.is(pendingExitCleanups(), before)
  assert.is(process.listenerCount('SIGINT'), listeners)
})

test.run()
