/**
 * Every error code, triggered. One row per code (cases-*.ts): the smallest
 * input that reaches it and the exit status a user gets. A row runs
 * `lora … --json` in-process and checks the JSON error's code and exit
 * status, then the plain run's exit status and its one `Error:` line; a code
 * no command reaches is thrown by the core call that owns it. The last test
 * reads src/ and fails when a code is thrown there without a row here, or a
 * row names a code src/ no longer has.
 */
import {mkdirSync} from 'node:fs'
import {join} from 'node:path'
import {suite} from 'uvu'
import * as assert from 'uvu/assert'
import {runCli, skipIf, tempDir} from '../../helpers/index.js'
import {CASES, codesInSource} from './catalog.js'
import {ErrorCase, Fixtures} from './fixtures.js'

const test = suite('error codes')
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
      // every error, oclif's usage errors included, is one line naming the problem
      assert.ok(/^Error: [^\n]+\n$/.test(plain.stderr), `one line: ${plain.stderr}`)
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

test('every code thrown in src/ has a row; every row names a code of src/, once', () => {
  const inSource = codesInSource()
  const rows = CASES.map((c) => c.code)
  assert.ok(inSource.size > 100, `found ${inSource.size} codes in src/`)
  assert.equal(rows.filter((c, i) => rows.indexOf(c) !== i), [], 'codes with two rows')
  assert.equal([...inSource].filter((c) => !rows.includes(c)).sort(), [], 'codes without a row')
  assert.equal(rows.filter((c) => !inSource.has(c)).sort(), [], 'rows for codes src/ does not have')
})

test.run()
