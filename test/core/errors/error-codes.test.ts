/**
 * Every error code, triggered. One row per code (cases-*.ts): the smallest
 * input that reaches it and the exit status a user gets. A row runs
 * `lora … --json` in-process and checks the JSON error's code and exit
 * status, then the plain run's exit status and its one `Error:` line; a code
 * no command reaches is thrown by the core call that owns it. The last test
 * reads src/ and fails when a code is thrown there without a row here, or a
 * row names a code src/ no longer has.
 */
import {mkdirSync, readFileSync, readdirSync, statSync} from 'node:fs'
import {join} from 'node:path'
import {suite} from 'uvu'
import * as assert from 'uvu/assert'
import {REPO_ROOT, runCli, skipIf, tempDir} from '../../helpers/index.js'
import {BENCH_CASES} from './cases-bench.js'
import {E2E_CASES} from './cases-e2e.js'
import {FILE_CASES} from './cases-files.js'
import {GGUF_CASES} from './cases-gguf.js'
import {MODEL_CASES} from './cases-model.js'
import {PACK_CASES} from './cases-pack.js'
import {RUNTIME_CASES} from './cases-runtime.js'
import {EVAL_CASES} from './cases-eval.js'
import {ErrorCase, Fixtures} from './fixtures.js'

const test = suite('error codes')

const CASES: ErrorCase[] = [...FILE_CASES, ...PACK_CASES, ...MODEL_CASES, ...GGUF_CASES, ...BENCH_CASES, ...E2E_CASES, ...RUNTIME_CASES, ...EVAL_CASES]
const root = tempDir('lora-error-codes-')
const fx = new Fixtures(root.path)
test.after(async () => {
  await fx.close()
  root.cleanup()
})

function folder(...parts: string[]): string {
  const dir = join(root.path, ...parts)
  mkdirSync(dir, {recursive: true})
  return dir
}

for (const c of CASES) {
  skipIf(test, c.skip)(`${c.code} (exit ${c.exit}): ${c.input}`, async () => {
    if (c.cli) {
      const json = await runCli([...(await c.cli(folder(c.code, 'json'), fx)), '--json'])
      let error: {code?: string; exitCode?: number; message?: string} | undefined
      try {
        error = JSON.parse(json.stdout).error
      } catch {
        assert.unreachable(`--json printed no JSON (exit ${json.status}): ${json.stdout}${json.stderr}`)
      }
      assert.is(error?.code, c.code, `${error?.message} (exit ${json.status})`)
      assert.is(json.status, c.exit, error?.message)
      assert.is(error?.exitCode, c.exit)
      const plain = await runCli(await c.cli(folder(c.code, 'plain'), fx))
      assert.is(plain.status, c.exit, plain.stderr)
      // oclif's own usage errors add a hint line; every LoraError is one line naming the problem
      if (c.code !== 'USAGE') assert.ok(/^Error: [^\n]+\n$/.test(plain.stderr), `one line: ${plain.stderr}`)
      return
    }
    let error: (Error & {code?: string; exitCode?: number}) | undefined
    try {
      await c.core!(folder(c.code), fx)
    } catch (e) {
      error = e as Error & {code?: string; exitCode?: number}
    }
    assert.ok(error, `expected ${c.code}, nothing was thrown`)
    assert.is(error.code, c.code, error.message)
    assert.is(error.exitCode, c.exit)
    assert.not.match(error.message, /\n/)
  })
}

/** String literals that are not error codes though they look like one. */
const NOT_CODES = new Set([
  'F8_E4M3', // safetensors dtype names
  'F8_E5M2',
  'Q4_0', // GGML type names
  'Q8_0',
  'ALL_F32', // llama.cpp's file type name (general.file_type 0)
  'CAUSAL_LM', // PEFT's task_type
])

/** Every error code src/ can produce: CODE_LIKE literals, first arguments of the error classes, `code:` fields, and the IO_ codes of describeSystemError. */
function codesInSource(): Set<string> {
  const files: string[] = []
  const walk = (dir: string) => {
    for (const e of readdirSync(dir)) {
      const p = join(dir, e)
      if (statSync(p).isDirectory()) walk(p)
      else if (p.endsWith('.ts')) files.push(p)
    }
  }
  walk(join(REPO_ROOT, 'src'))
  const codes = new Set<string>()
  for (const file of files) {
    const text = readFileSync(file, 'utf8')
      .replace(/\/\*[\s\S]*?\*\//g, '')
      .replace(/(^|[^:'"`])\/\/.*$/gm, '$1')
    for (const m of text.matchAll(/['"]([A-Z][A-Z0-9]*(?:_[A-Z0-9]+)+)['"]/g)) if (!NOT_CODES.has(m[1]!)) codes.add(m[1]!)
    for (const m of text.matchAll(/new (?:Lora|Input|Usage|Gate)Error\(\s*['"]([A-Z][A-Z0-9_]*)['"]/g)) codes.add(m[1]!)
    for (const m of text.matchAll(/\bcode: ['"]([A-Z][A-Z0-9_]*)['"]/g)) codes.add(m[1]!)
  }
  const errors = readFileSync(join(REPO_ROOT, 'src/core/errors.ts'), 'utf8')
  const table = /const problems[^{]*\{([\s\S]*?)\}/.exec(errors)?.[1] ?? ''
  for (const m of table.matchAll(/^\s*(E[A-Z]+):/gm)) codes.add(`IO_${m[1]}`)
  return codes
}

test('every code thrown in src/ has a row; every row names a code of src/, once', () => {
  const inSource = codesInSource()
  const rows = CASES.map((c) => c.code)
  assert.ok(inSource.size > 100, `found ${inSource.size} codes in src/`)
  assert.equal(rows.filter((c, i) => rows.indexOf(c) !== i), [], 'codes with two rows')
  assert.equal([...inSource].filter((c) => !rows.includes(c)).sort(), [], 'codes without a row')
  assert.equal(rows.filter((c) => !inSource.has(c)).sort(), [], 'rows for codes src/ does not have')
})

test.run()
