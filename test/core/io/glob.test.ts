import {mkdirSync, symlinkSync, writeFileSync} from 'node:fs'
import {join} from 'node:path'
import {suite} from 'uvu'
import * as assert from 'uvu/assert'
import {expandGlob, globToRegExp, hasGlobMagic, segmentToRegExp} from '../../../src/core/io/glob.js'
import {tempDir} from '../../helpers/index.js'

const test = suite('glob')

test('magic characters, unless escaped', () => {
  assert.ok(hasGlobMagic('a*'))
  assert.ok(hasGlobMagic('a?b'))
  assert.ok(hasGlobMagic('x/[ab]'))
  assert.not.ok(hasGlobMagic('plain/path'))
  assert.not.ok(hasGlobMagic('a\\*b'))
})

const cases: Array<[string, string[], string[]]> = [
  // pattern, names it matches, names it does not
  ['adapter-*', ['adapter-0001', 'adapter-', 'adapter-x.y'], ['adapters', 'xadapter-1', 'adapter']],
  ['a?c', ['abc', 'a.c'], ['ac', 'abbc']],
  ['run[0-2]', ['run0', 'run2'], ['run3', 'runa']],
  ['run[!0-2]', ['run3', 'runa'], ['run0', 'run']],
  ['run[^a]', ['runb'], ['runa']],
  ['[]x]y', [']y', 'xy'], ['y']],
  ['*', ['a', 'b.c'], ['.hidden']],
  ['.*', ['.hidden'], ['visible']],
  ['a\\*', ['a*'], ['ab']],
  ['a[', ['a['], ['a']],
  ['x.y+z(1)', ['x.y+z(1)'], ['xyy+z1', 'x.yyz(1)']],
]

for (const [pattern, yes, no] of cases) {
  test(`segment "${pattern}"`, () => {
    const re = segmentToRegExp(pattern)
    for (const name of yes) assert.ok(re.test(name), `${pattern} should match ${name}`)
    for (const name of no) assert.not.ok(re.test(name), `${pattern} should not match ${name}`)
  })
}

const nameCases: Array<[string, string[], string[]]> = [
  // the same dialect on whole names (tensor names): `*` runs across dots, a leading dot is an ordinary character
  ['*.q_proj.*', ['model.layers.0.self_attn.q_proj.weight', '.q_proj.'], ['model.layers.0.self_attn.k_proj.weight']],
  ['model.layers.?.mlp.*', ['model.layers.3.mlp.up_proj.weight'], ['model.layers.12.mlp.up_proj.weight', 'modelxlayers.3.mlp.w']],
  ['model.layers.[0-1].*', ['model.layers.0.a', 'model.layers.1.b'], ['model.layers.2.a']],
  ['*.[!q]_proj.weight', ['x.k_proj.weight', 'x.v_proj.weight'], ['x.q_proj.weight']],
  ['lm_head.*', ['lm_head.weight'], ['model.lm_head.weight']],
  ['a\\*', ['a*'], ['ab']],
  ['*', ['anything.at.all', '.hidden'], []],
]

for (const [pattern, yes, no] of nameCases) {
  test(`name "${pattern}"`, () => {
    const re = globToRegExp(pattern)
    for (const name of yes) assert.ok(re.test(name), `${pattern} should match ${name}`)
    for (const name of no) assert.not.ok(re.test(name), `${pattern} should not match ${name}`)
  })
}

test('an impossible class is an error', () => {
  assert.throws(() => segmentToRegExp('[z-a]'), /invalid character class/)
  assert.throws(() => globToRegExp('w.[z-a]'), /invalid character class/)
})

test('expands against the file system: *, **, classes; sorted, absolute, no duplicates; ** skips hidden folders and links', async () => {
  const tmp = tempDir()
  try {
    const root = tmp.path
    for (const d of ['runs/a/lora', 'runs/b/lora', 'runs/b/deep/x/lora', 'runs/.hidden/lora', 'other/c1', 'other/c2', 'other/d1']) mkdirSync(join(root, d), {recursive: true})
    writeFileSync(join(root, 'other/c3'), 'a file')
    symlinkSync(join(root, 'runs'), join(root, 'runs/b/loop'))
    assert.equal(await expandGlob('runs/*/lora', root), [join(root, 'runs/a/lora'), join(root, 'runs/b/lora')])
    assert.equal(await expandGlob('runs/**/lora', root), [join(root, 'runs/a/lora'), join(root, 'runs/b/deep/x/lora'), join(root, 'runs/b/lora')])
    assert.equal(await expandGlob('**/c[12]', root), [join(root, 'other/c1'), join(root, 'other/c2')])
    assert.equal(await expandGlob('other/c?', root), [join(root, 'other/c1'), join(root, 'other/c2'), join(root, 'other/c3')])
    assert.equal(await expandGlob(`${root}/other/[!c]*`), [join(root, 'other/d1')])
    assert.equal(await expandGlob('nothing/*', root), [])
  } finally {
    tmp.cleanup()
  }
})

test.run()
