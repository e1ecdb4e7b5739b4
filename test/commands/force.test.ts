/**
 * Issue 15, why 1: `--force` never deletes what the command did not write.
 * Each reproduction from the issue runs through the CLI and must leave every
 * input and unrelated file in place.
 */
import {cpSync, mkdirSync, readFileSync, readdirSync, statSync, writeFileSync} from 'node:fs'
import {join} from 'node:path'
import {suite} from 'uvu'
import * as assert from 'uvu/assert'
import {Fixtures} from '../core/errors/fixtures.js'
import {runCli, tempDir} from '../helpers/index.js'

const test = suite('commands: --force replaces only what the command wrote')
const tmp = tempDir('lora-force-')
const fx = new Fixtures(join(tmp.path, 'fixtures'))
test.after(async () => {
  await fx.close()
  tmp.cleanup()
})

let n = 0
/** `models/` holding a base, an adapter and an unrelated notes.txt. */
async function models(): Promise<{dir: string; base: string; adapter: string; listing: () => string[]}> {
  const dir = join(tmp.path, `case${n++}`, 'models')
  mkdirSync(dir, {recursive: true})
  cpSync(await fx.base(), join(dir, 'base'), {recursive: true})
  cpSync(await fx.adapter(), join(dir, 'adapter'), {recursive: true})
  writeFileSync(join(dir, 'notes.txt'), 'not lora\'s')
  return {dir, base: join(dir, 'base'), adapter: join(dir, 'adapter'), listing: () => tree(dir)}
}

/** Every path below `dir` with its size. */
function tree(dir: string): string[] {
  const out: string[] = []
  const walk = (at: string, rel: string) => {
    for (const e of readdirSync(at).sort()) {
      const p = join(at, e)
      const st = statSync(p)
      if (st.isDirectory()) walk(p, `${rel}${e}/`)
      else out.push(`${rel}${e} ${st.size}`)
    }
  }
  walk(dir, '')
  return out
}

/** One `Error:` line and exit 2, and the --json error with `code`. */
async function refused(args: string[], code: string): Promise<void> {
  const plain = await runCli(args)
  assert.is(plain.status, 2, plain.stderr)
  assert.match(plain.stderr, /^Error: [^\n]+\n$/)
  const json = await runCli([...args, '--json'])
  assert.is(json.status, 2)
  assert.is(JSON.parse(json.stdout).error.code, code, json.stdout)
}

test('merge --out models --force, with the base and adapter inside models/: refused, nothing removed', async () => {
  const m = await models()
  const before = m.listing()
  await refused(['merge', '--base', m.base, '--adapter', m.adapter, '--out', m.dir, '--force'], 'OUTPUT_CONTAINS_INPUT')
  assert.equal(m.listing(), before)
})

test('unpack pack --out <the pack\'s folder> --force: refused, the folder keeps everything', async () => {
  const dir = join(tmp.path, `case${n++}`)
  mkdirSync(dir)
  cpSync(await fx.pack(), join(dir, 'pack.safetensors'))
  writeFileSync(join(dir, 'notes.txt'), 'mine')
  const before = tree(dir)
  await refused(['unpack', join(dir, 'pack.safetensors'), '--slot', '1', '--out', dir, '--force'], 'OUTPUT_CONTAINS_INPUT')
  assert.equal(tree(dir), before)
})

test('synth adapters --out <a non-empty folder lora did not write> --force: refused, its files stay', async () => {
  const dir = join(tmp.path, `case${n++}`)
  mkdirSync(dir)
  writeFileSync(join(dir, 'thesis.tex'), 'years of work')
  await refused(['synth', 'adapters', '--out', dir, '--count', '1', '--hidden', '16', '--intermediate', '24', '--layers', '1', '--rank', '2', '--force'], 'OUTPUT_NOT_REPLACEABLE')
  assert.equal(tree(dir), ['thesis.tex 13'])
})

test('merge --out f.safetensors --force, where f.safetensors is a file: refused (a folder never replaces a file)', async () => {
  const m = await models()
  const file = join(m.dir, '..', 'f.safetensors')
  writeFileSync(file, 'a file')
  await refused(['merge', '--base', m.base, '--adapter', m.adapter, '--out', file, '--force'], 'OUTPUT_KIND_MISMATCH')
  assert.is(readFileSync(file, 'utf8'), 'a file')
})

test('pack --out <a folder> --force: refused (a file never replaces a folder)', async () => {
  const dir = join(tmp.path, `case${n++}`, 'looks-like-a-pack.safetensors')
  mkdirSync(dir, {recursive: true})
  writeFileSync(join(dir, 'keep'), 'x')
  await refused(['pack', await fx.adapters(), '--out', dir, '--force'], 'OUTPUT_KIND_MISMATCH')
  assert.equal(tree(dir), ['keep 1'])
})

test('--force does replace a previous output of the same kind (merge twice; synth adapters twice)', async () => {
  const m = await models()
  const out = join(m.dir, '..', 'merged')
  for (let i = 0; i < 2; i++) {
    const r = await runCli(['merge', '--base', m.base, '--adapter', m.adapter, '--out', out, '--no-quality', '--force'])
    assert.is(r.status, 0, r.stderr)
  }
  assert.equal(readdirSync(join(out, '..')).sort(), ['merged', 'models'])
  // a file of the user's inside the previous output makes it theirs: refused
  writeFileSync(join(out, 'notes.txt'), 'mine')
  await refused(['merge', '--base', m.base, '--adapter', m.adapter, '--out', out, '--no-quality', '--force'], 'OUTPUT_NOT_REPLACEABLE')
  assert.is(readFileSync(join(out, 'notes.txt'), 'utf8'), 'mine')
  const ads = join(tmp.path, `case${n++}`, 'ads')
  const synth = ['synth', 'adapters', '--out', ads, '--count', '2', '--hidden', '16', '--intermediate', '24', '--layers', '1', '--rank', '2', '--force']
  assert.is((await runCli(synth)).status, 0)
  assert.is((await runCli(synth)).status, 0)
  assert.equal(readdirSync(ads).sort(), ['.lora-output.json', 'adapter-0000', 'adapter-0001'])
})

test('merge --report inside --out, or equal to an input, is refused before anything is written', async () => {
  const m = await models()
  const out = join(m.dir, '..', 'merged-r')
  await refused(['merge', '--base', m.base, '--adapter', m.adapter, '--out', out, '--report', join(out, 'q.json')], 'OUTPUTS_OVERLAP')
  await refused(['merge', '--base', m.base, '--adapter', m.adapter, '--out', out, '--report', join(m.adapter, 'adapter_config.json'), '--force'], 'OUTPUT_INSIDE_INPUT')
  assert.equal(readdirSync(join(m.dir, '..')), ['models'])
})

test('--out regularfile/x names the real problem (a file where a folder should be), not "already exists"', async () => {
  const dir = join(tmp.path, `case${n++}`)
  mkdirSync(dir)
  writeFileSync(join(dir, 'regularfile'), 'x')
  await refused(['pack', await fx.adapters(), '--out', join(dir, 'regularfile/x.safetensors')], 'OUTPUT_PARENT_NOT_FOLDER')
})

test.run()
