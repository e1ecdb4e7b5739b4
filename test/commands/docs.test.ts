import {readFileSync} from 'node:fs'
import {join} from 'node:path'
import {Config} from '@oclif/core'
import {suite} from 'uvu'
import * as assert from 'uvu/assert'
import {renderCommandsDoc} from '../../src/cli/commands-doc.js'
import {REPO_ROOT, runCli} from '../helpers/index.js'

const test = suite('docs')

test('docs/commands.md matches the command definitions (run `npm run docs:commands` when this fails)', async () => {
  const current = readFileSync(join(REPO_ROOT, 'docs/commands.md'), 'utf8')
  assert.fixture(current, await renderCommandsDoc(REPO_ROOT))
})

test('every command answers --help with exit 0', async () => {
  const config = await Config.load({root: REPO_ROOT})
  const ids = config.commands.map((c) => c.id)
  assert.ok(ids.length >= 4, `found commands: ${ids.join(', ')}`)
  for (const id of ids) {
    const r = await runCli([...id.split(':'), '--help'])
    assert.is(r.status, 0, `${id}: ${r.stderr}`)
    assert.match(r.stdout, /USAGE/, id)
    assert.match(r.stdout, /--json/, `${id} offers --json`)
  }
})

test.run()
