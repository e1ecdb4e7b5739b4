import {chmodSync, existsSync, mkdirSync, readFileSync, readdirSync, symlinkSync, writeFileSync} from 'node:fs'
import {join} from 'node:path'
import {suite} from 'uvu'
import * as assert from 'uvu/assert'
import {AtomicDirectory, AtomicFile, withAtomic} from '../../../src/core/io/atomic-output.js'
import {OUTPUT_MARKER, checkOutputs} from '../../../src/core/io/output-target.js'
import {rejection, tempDir} from '../../helpers/index.js'

const test = suite('io/output-target')
const tmp = tempDir('lora-output-target-')
test.after(() => tmp.cleanup())

let n = 0
/** A fresh folder for one test. */
function fresh(): string {
  const dir = join(tmp.path, `t${n++}`)
  mkdirSync(dir)
  return dir
}

/** A folder output of `kind` written through AtomicDirectory, holding `files`. */
async function written(path: string, kind: string, files: Record<string, string>, force = false): Promise<void> {
  await withAtomic(await AtomicDirectory.create(path, {kind, force}), async (out) => {
    for (const [name, text] of Object.entries(files)) {
      mkdirSync(join(out.path, name, '..'), {recursive: true})
      writeFileSync(join(out.path, name), text)
    }
  })
}

test('an output equal to, containing or inside an input is refused, whatever --force says', async () => {
  const dir = fresh()
  mkdirSync(join(dir, 'models/base'), {recursive: true})
  writeFileSync(join(dir, 'models/base/model.safetensors'), 'x')
  const base = join(dir, 'models/base')
  const cases: Array<[string, string]> = [
    [base, 'OUTPUT_IS_INPUT'],
    [join(dir, 'models'), 'OUTPUT_CONTAINS_INPUT'],
    [dir, 'OUTPUT_CONTAINS_INPUT'],
    [join(base, 'merged'), 'OUTPUT_INSIDE_INPUT'],
  ]
  for (const [out, code] of cases) {
    const viaFolder = await rejection(checkOutputs([{path: out, kind: 'folder', folderKind: 'model', flag: '--out'}], {force: true, inputs: [base]}))
    assert.is(viaFolder.code, code, viaFolder.message)
    assert.is(viaFolder.exitCode, 2)
  }
  // a folder holding an input file is never an output; a sibling of the file may be one
  const file = join(base, 'model.safetensors')
  for (const out of [base, join(dir, 'models'), dir]) assert.is((await rejection(checkOutputs([{path: out, kind: 'folder'}], {force: true, inputs: [file]}))).code, 'OUTPUT_CONTAINS_INPUT')
  assert.is((await rejection(checkOutputs([{path: file, kind: 'file'}], {force: true, inputs: [file]}))).code, 'OUTPUT_IS_INPUT')
  await checkOutputs([{path: join(base, 'merged'), kind: 'folder'}], {force: true, inputs: [file]})
  // a symbolic link to the input is the input
  symlinkSync(base, join(dir, 'link'))
  assert.is((await rejection(checkOutputs([{path: join(dir, 'link'), kind: 'folder'}], {force: true, inputs: [base]}))).code, 'OUTPUT_IS_INPUT')
  // relative paths resolve against cwd
  assert.is((await rejection(checkOutputs([{path: '.', kind: 'folder'}], {force: true, inputs: ['models/base'], cwd: dir}))).code, 'OUTPUT_CONTAINS_INPUT')
  assert.ok(existsSync(join(base, 'model.safetensors')))
})

test('two outputs of one command may not overlap (--report inside --out)', async () => {
  const dir = fresh()
  const error = await rejection(checkOutputs([{path: join(dir, 'out'), kind: 'folder', flag: '--out'}, {path: join(dir, 'out/report.json'), kind: 'file', flag: '--report'}]))
  assert.is(error.code, 'OUTPUTS_OVERLAP')
  assert.match(error.message, /--out and --report/)
})

test('the parent must be a folder we may write in: named before any work', async () => {
  const dir = fresh()
  writeFileSync(join(dir, 'regular'), 'x')
  const notFolder = await rejection(checkOutputs([{path: join(dir, 'regular/x'), kind: 'file'}]))
  assert.is(notFolder.code, 'OUTPUT_PARENT_NOT_FOLDER')
  assert.match(notFolder.message, /regular is a file, not a folder/)
  assert.is((await rejection(checkOutputs([{path: join(dir, 'regular/a/b/c'), kind: 'folder'}]))).code, 'OUTPUT_PARENT_NOT_FOLDER')
  if (process.getuid?.() !== 0) {
    mkdirSync(join(dir, 'locked'))
    chmodSync(join(dir, 'locked'), 0o555)
    assert.is((await rejection(checkOutputs([{path: join(dir, 'locked/report.json'), kind: 'file'}]))).code, 'OUTPUT_NOT_WRITABLE')
    chmodSync(join(dir, 'locked'), 0o755)
  }
  // a missing chain of folders is fine: it is created
  await checkOutputs([{path: join(dir, 'new/deeper/out.json'), kind: 'file'}])
})

test('without --force an existing output is refused; with it a file replaces only a file', async () => {
  const dir = fresh()
  writeFileSync(join(dir, 'f.safetensors'), 'old')
  mkdirSync(join(dir, 'folder'))
  assert.is((await rejection(checkOutputs([{path: join(dir, 'f.safetensors'), kind: 'file'}]))).code, 'OUTPUT_EXISTS')
  await checkOutputs([{path: join(dir, 'f.safetensors'), kind: 'file'}], {force: true})
  const fileOverFolder = await rejection(checkOutputs([{path: join(dir, 'folder'), kind: 'file'}], {force: true}))
  assert.is(fileOverFolder.code, 'OUTPUT_KIND_MISMATCH')
  const folderOverFile = await rejection(checkOutputs([{path: join(dir, 'f.safetensors'), kind: 'folder', folderKind: 'model'}], {force: true}))
  assert.is(folderOverFile.code, 'OUTPUT_KIND_MISMATCH')
  assert.is(readFileSync(join(dir, 'f.safetensors'), 'utf8'), 'old')
  // and the atomic file replaces it only at commit
  const file = await AtomicFile.create(join(dir, 'f.safetensors'), {force: true})
  await file.handle.writeFile('new')
  assert.is(readFileSync(join(dir, 'f.safetensors'), 'utf8'), 'old')
  await file.commit()
  assert.is(readFileSync(join(dir, 'f.safetensors'), 'utf8'), 'new')
})

test('--force replaces a folder only when it is a previous output of the same kind holding nothing else', async () => {
  const dir = fresh()
  const out = join(dir, 'merged')
  await written(out, 'model', {'config.json': '{}', 'model.safetensors': 'v1'})
  const marker = JSON.parse(readFileSync(join(out, OUTPUT_MARKER), 'utf8'))
  assert.equal(marker, {tool: 'lora', kind: 'model', files: ['config.json', 'model.safetensors']})
  // same kind, nothing else: replaced, atomically, with no leftovers beside it
  await written(out, 'model', {'config.json': '{}', 'model.safetensors': 'v2'}, true)
  assert.is(readFileSync(join(out, 'model.safetensors'), 'utf8'), 'v2')
  assert.equal(readdirSync(dir), ['merged'])
  // another kind: refused
  const otherKind = await rejection(written(out, 'peft-adapter', {'adapter_config.json': '{}'}, true))
  assert.is(otherKind.code, 'OUTPUT_NOT_REPLACEABLE')
  assert.match(otherKind.message, /holds a model/)
  // a file the user put there: refused, and it stays
  writeFileSync(join(out, 'notes.txt'), 'mine')
  const foreign = await rejection(written(out, 'model', {'model.safetensors': 'v3'}, true))
  assert.is(foreign.code, 'OUTPUT_NOT_REPLACEABLE')
  assert.match(foreign.message, /notes\.txt/)
  assert.is(readFileSync(join(out, 'notes.txt'), 'utf8'), 'mine')
  assert.is(readFileSync(join(out, 'model.safetensors'), 'utf8'), 'v2')
  // a folder lora did not write (no marker): refused
  mkdirSync(join(dir, 'theirs'))
  writeFileSync(join(dir, 'theirs/model.safetensors'), 'x')
  const noMarker = await rejection(written(join(dir, 'theirs'), 'model', {'model.safetensors': 'y'}, true))
  assert.is(noMarker.code, 'OUTPUT_NOT_REPLACEABLE')
  assert.match(noMarker.message, /no \.lora-output\.json/)
  assert.equal(readdirSync(dir).filter((e) => e.startsWith('.')), [], 'no temporaries left by the refusals')
})

test.run()
