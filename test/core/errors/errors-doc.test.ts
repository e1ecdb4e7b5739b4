import {readFileSync} from 'node:fs'
import {join} from 'node:path'
import {suite} from 'uvu'
import * as assert from 'uvu/assert'
import {REPO_ROOT} from '../../helpers/index.js'
import {CASES, codesInSource} from './catalog.js'
import {renderErrorsDoc} from './errors-doc.js'

const test = suite('docs/errors.md')

test('lists every error code with its exit status and message, as generated (run `npm run docs:errors` when this fails)', () => {
  const current = readFileSync(join(REPO_ROOT, 'docs/errors.md'), 'utf8')
  assert.fixture(current, renderErrorsDoc())
  for (const code of codesInSource()) assert.ok(current.includes(`| \`${code}\` |`), `docs/errors.md lists ${code}`)
  assert.is(CASES.length, codesInSource().size)
})

test.run()
