import {spawnSync} from 'node:child_process'
import {existsSync, mkdirSync, readFileSync, readdirSync, writeFileSync} from 'node:fs'
import {join} from 'node:path'
import {suite} from 'uvu'
import * as assert from 'uvu/assert'
import {createWorkFolder, processAlive, removeStaleTemporaries, temporaryOwner, temporarySibling, workFolderName} from '../../../src/core/io/temporaries.js'
import {tempDir} from '../../helpers/index.js'

const test = suite('io/temporaries')
const tmp = tempDir('lora-temporaries-')
test.after(() => tmp.cleanup())

/** The PID of a process that has ended. */
function deadPid(): number {
  const child = spawnSync(process.execPath, ['-e', 'process.stdout.write(String(process.pid))'], {encoding: 'utf8'})
  const pid = Number(child.stdout)
  assert.ok(!processAlive(pid), `pid ${pid} ended`)
  return pid
}

test('every temporary name carries its owner PID', () => {
  const sibling = temporarySibling('/x/pack.safetensors')
  assert.match(sibling, new RegExp(`^/x/\\.pack\\.safetensors\\.tmp-${process.pid}-[0-9a-f]{8}$`))
  assert.is(temporaryOwner('.pack.safetensors.tmp-123-0badf00d'), 123)
  assert.is(temporaryOwner('.merged.old-77-0badf00d'), 77)
  assert.is(temporaryOwner(workFolderName('bench')), process.pid)
  assert.is(temporaryOwner(workFolderName('compress-input', true)), process.pid)
  for (const name of ['pack.safetensors', '.pack.safetensors.tmp-x-0badf00d', 'lora-bench', '.notes.tmp-12-xyz', 'lora-bench-12-zz']) assert.is(temporaryOwner(name), undefined, name)
})

test('stale temporaries of dead processes are removed; live ones and everything else stay', async () => {
  const dir = join(tmp.path, 'stale')
  mkdirSync(dir)
  const dead = deadPid()
  const stale = [`.p.safetensors.tmp-${dead}-0badf00d`, `lora-bench-${dead}-0badf00d`, `.lora-compress-input-${dead}-0badf00d`]
  const live = [`.p.safetensors.tmp-${process.pid}-0badf00d`, `lora-bench-${process.pid}-0badf00d`]
  const other = ['p.safetensors', 'notes.txt', `.notes-${dead}`]
  for (const n of [...stale, ...live, ...other]) writeFileSync(join(dir, n), 'x')
  mkdirSync(join(dir, `.merged.tmp-${dead}-00000001`))
  writeFileSync(join(dir, `.merged.tmp-${dead}-00000001`, 'model.safetensors'), 'x')
  const done = await removeStaleTemporaries(dir)
  assert.equal(done.removed.length, stale.length + 1)
  assert.equal(readdirSync(dir).sort(), [...live, ...other].sort())
})

test('a folder killed between the two renames of a replacement is put back under its name', async () => {
  const dir = join(tmp.path, 'restore')
  mkdirSync(dir)
  const dead = deadPid()
  mkdirSync(join(dir, `.merged.old-${dead}-00000002`))
  writeFileSync(join(dir, `.merged.old-${dead}-00000002`, 'model.safetensors'), 'previous')
  mkdirSync(join(dir, `.merged.tmp-${dead}-00000003`))
  const done = await removeStaleTemporaries(dir)
  assert.equal(done.restored, [join(dir, 'merged')])
  assert.equal(readdirSync(dir), ['merged'])
  assert.is(readFileSync(join(dir, 'merged', 'model.safetensors'), 'utf8'), 'previous')
})

test('a work folder is created with the PID in its name and removed once', async () => {
  const work = await createWorkFolder(tmp.path, 'bench')
  assert.is(temporaryOwner(work.path.split('/').pop()!), process.pid)
  assert.ok(existsSync(work.path))
  await work.remove()
  await work.remove()
  assert.not.ok(existsSync(work.path))
})

test.run()
