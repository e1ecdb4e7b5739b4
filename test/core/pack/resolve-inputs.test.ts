import {mkdirSync, writeFileSync} from 'node:fs'
import {join} from 'node:path'
import {suite} from 'uvu'
import * as assert from 'uvu/assert'
import {resolveAdapterInputs} from '../../../src/core/pack/resolve-inputs.js'
import {rejection, tempDir} from '../../helpers/index.js'

const test = suite('resolve-inputs')

/** Folders that look like adapters (resolution only checks for adapter_config.json). */
function tree(root: string, adapters: string[]): void {
  for (const a of adapters) {
    mkdirSync(join(root, a), {recursive: true})
    writeFileSync(join(root, a, 'adapter_config.json'), '{}')
  }
}

test('adapter folders in the order given; a folder of adapters and a glob expand sorted', async () => {
  const tmp = tempDir()
  try {
    const root = tmp.path
    tree(root, ['set/b', 'set/a', 'set/c10', 'set/c9', 'x/one', 'runs/r1/final', 'runs/r2/final'])
    mkdirSync(join(root, 'set/not-an-adapter'))
    const got = await resolveAdapterInputs({inputs: ['x/one', 'set', 'runs/*/final'], cwd: root})
    assert.equal(got, [join(root, 'x/one'), join(root, 'set/a'), join(root, 'set/b'), join(root, 'set/c10'), join(root, 'set/c9'), join(root, 'runs/r1/final'), join(root, 'runs/r2/final')])
    // naming a file of the adapter means its folder
    assert.equal(await resolveAdapterInputs({inputs: ['x/one/adapter_config.json'], cwd: root}), [join(root, 'x/one')])
  } finally {
    tmp.cleanup()
  }
})

test('--list: one path or glob per line, blank lines and # comments skipped, after the arguments', async () => {
  const tmp = tempDir()
  try {
    const root = tmp.path
    tree(root, ['a', 'b', 'g/1', 'g/2'])
    writeFileSync(join(root, 'list.txt'), '# adapters\n\nb\r\n  g/*  \n')
    assert.equal(await resolveAdapterInputs({inputs: ['a'], list: 'list.txt', cwd: root}), [join(root, 'a'), join(root, 'b'), join(root, 'g/1'), join(root, 'g/2')])
  } finally {
    tmp.cleanup()
  }
})

const refusals: Array<{name: string; inputs: string[]; list?: string; listText?: string; code: string; message: RegExp}> = [
  {name: 'nothing given', inputs: [], code: 'PACK_NO_INPUT', message: /give adapter folders, globs, or --list FILE/},
  {name: 'a missing path', inputs: ['missing'], code: 'IO_ENOENT', message: /read adapter missing: no such file or directory/},
  {name: 'a glob matching nothing', inputs: ['a', 'zz*'], code: 'PACK_GLOB_NO_MATCH', message: /glob "zz\*" matches nothing/},
  {name: 'a glob matching no adapter', inputs: ['emp*'], code: 'PACK_GLOB_NO_MATCH', message: /glob "emp\*" matches 1 paths but no adapter folder/},
  {name: 'a folder without adapters', inputs: ['empty'], code: 'PACK_NOT_AN_ADAPTER', message: /empty: folder has no adapter_config\.json and no adapter folders inside/},
  {name: 'an adapter given twice', inputs: ['a', 'a/'], code: 'PACK_DUPLICATE_ADAPTER', message: /adapter .*\/a is given twice/},
  {name: 'an empty list', inputs: [], list: 'list.txt', listText: '# nothing\n', code: 'PACK_BAD_LIST', message: /read list\.txt: the list names no adapter/},
  {name: 'a missing list', inputs: [], list: 'nope.txt', code: 'IO_ENOENT', message: /read .*nope\.txt: no such file or directory/},
  {name: 'a bad line in the list, with its line number', inputs: [], list: 'list.txt', listText: 'a\nmissing\n', code: 'IO_ENOENT', message: /^list\.txt entry 2: read adapter missing: no such file/},
]

for (const c of refusals) {
  test(`refused: ${c.name}`, async () => {
    const tmp = tempDir()
    try {
      tree(tmp.path, ['a'])
      mkdirSync(join(tmp.path, 'empty'))
      if (c.listText !== undefined) writeFileSync(join(tmp.path, c.list!), c.listText)
      const e = await rejection(resolveAdapterInputs({inputs: c.inputs, list: c.list, cwd: tmp.path}))
      assert.is(e.code, c.code, e.message)
      assert.is(e.exitCode, 2)
      assert.match(e.message, c.message)
    } finally {
      tmp.cleanup()
    }
  })
}

test.run()
