/**
 * docs/api.md is a specification: its CI script runs as written against the
 * built package, every name it documents is exported, and src/index.ts exports
 * names only (no `export *`).
 */
import {spawnSync} from 'node:child_process'
import {mkdtempSync, readFileSync, rmSync, writeFileSync} from 'node:fs'
import {tmpdir} from 'node:os'
import {join} from 'node:path'
import {pathToFileURL} from 'node:url'
import {suite} from 'uvu'
import * as assert from 'uvu/assert'
import {REPO_ROOT} from '../helpers/index.js'

const test = suite('docs/api.md')
const doc = readFileSync(join(REPO_ROOT, 'docs/api.md'), 'utf8')
const index = join(REPO_ROOT, 'dist/src/index.js')

test('src/index.ts names every export (no export *)', () => {
  const source = readFileSync(join(REPO_ROOT, 'src/index.ts'), 'utf8')
  assert.not.match(source, /export \*/)
})

test('every call and type the page names in code spans is exported', async () => {
  const api = (await import(pathToFileURL(index).href)) as Record<string, unknown>
  const source = readFileSync(join(REPO_ROOT, 'src/index.ts'), 'utf8')
  const table = doc.slice(0, doc.indexOf('## A CI script'))
  // field names the page mentions are not exports
  const fields = new Set(['report', 'toleranceFailures', 'gate', 'maxKld', 'code', 'message', 'exitCode'])
  const names = [...table.matchAll(/`([A-Za-z][A-Za-z0-9_]*)`/g)].map((m) => m[1]!).filter((n) => !fields.has(n))
  assert.ok(names.length > 40, `${names.length} names`)
  const missing = names.filter((n) => !(n in api) && !new RegExp(`\\b${n}\\b`).test(source.replace(/^\s*\/\/.*$/gm, '')))
  assert.equal(missing, [])
})

test('the CI script runs as written and reports what it built', () => {
  const block = /## A CI script[\s\S]*?```js\n([\s\S]*?)```/.exec(doc)?.[1]
  assert.ok(block, 'docs/api.md has a js block under "A CI script"')
  const dir = mkdtempSync(join(tmpdir(), 'lora-api-doc-'))
  try {
    const script = join(dir, 'ci.mjs')
    writeFileSync(script, block!.replace(/from 'lora-toolkit'/g, `from '${pathToFileURL(index).href}'`))
    const run = spawnSync(process.execPath, [script], {encoding: 'utf8', timeout: 300_000})
    assert.is(run.status, 0, run.stderr)
    const report = JSON.parse(run.stdout.trim().split('\n').pop()!) as {pack: {adapters: number}; merged: {format: string}; eval: Array<{variant: string; kld_mean: number}>; bench: Array<{strategy: string}>}
    assert.is(report.pack.adapters, 3)
    assert.is(report.merged.format, 'gguf')
    assert.equal(report.eval.map((v) => v.variant), ['merged:f16', 'merge-then-quantize:q4_0'])
    assert.ok(report.eval.every((v) => Number.isFinite(v.kld_mean) && v.kld_mean >= 0))
    assert.ok(report.bench.some((r) => r.strategy === 'gather'))
  } finally {
    rmSync(dir, {recursive: true, force: true})
  }
})

test.run()
