import {join} from 'node:path'
import {suite} from 'uvu'
import * as assert from 'uvu/assert'
import {InputError} from '../../../src/core/errors.js'
import {LoraAdapter} from '../../../src/core/formats/peft-adapter.js'
import {planMerge} from '../../../src/core/merge/plan.js'
import {ModelReader} from '../../../src/core/model-io/model-reader.js'
import {tempDir} from '../../helpers/index.js'
import {normal, randomModule, writeBase, writeLora} from '../../helpers/merge-fixtures.js'

const test = suite('merge/plan')

async function setup(dir: string, base: Array<[string, number[]]>, adapters: Array<{name: string; fanInFanOut: boolean; modules: Array<[string, number, number]>}>) {
  await writeBase(join(dir, 'base'), base.map(([name, shape]) => ({name, shape, values: normal(shape.reduce((a, b) => a * b, 1), 0.1, name)})))
  const loaded: LoraAdapter[] = []
  for (const a of adapters) {
    await writeLora(join(dir, a.name), a.modules.map(([m, i, o]) => randomModule(m, i, o, 2, a.name)), {r: 2, alpha: 4, fanInFanOut: a.fanInFanOut})
    loaded.push(await LoraAdapter.load(join(dir, a.name)))
  }
  const reader = await ModelReader.open(join(dir, 'base'))
  return {reader, loaded, close: async () => Promise.all([reader.close(), ...loaded.map((l) => l.close())])}
}

test('orientation comes from the base shape; square weights follow the non-square ones; a wrong flag warns', async () => {
  const dir = tempDir()
  try {
    // GPT-2 style: c_attn [in 8, out 24] and a square c_proj [8, 8], with fan_in_fan_out wrongly false
    const s = await setup(dir.path, [['h.0.c_attn.weight', [8, 24]], ['h.0.c_proj.weight', [8, 8]]], [{name: 'a', fanInFanOut: false, modules: [['h.0.c_attn', 8, 24], ['h.0.c_proj', 8, 8]]}])
    const plan = planMerge(s.reader, s.loaded, [1])
    assert.equal([...plan.targets.values()].map((t) => [t.name, t.transposed]), [['h.0.c_attn.weight', true], ['h.0.c_proj.weight', true]])
    assert.is(plan.targets.get('h.0.c_attn.weight')!.terms[0]!.scale, 2)
    assert.is(plan.warnings.length, 1)
    assert.match(plan.warnings[0]!, /fan_in_fan_out is false, but the base stores 2 of its 2 target weights as \[in, out\]/)
    await s.close()
  } finally {
    dir.cleanup()
  }
})

test('a square weight alone follows the adapter flag; nn.Linear shapes with a matching flag do not warn', async () => {
  const dir = tempDir()
  try {
    const s = await setup(dir.path, [['l.0.q.weight', [8, 8]], ['l.0.up.weight', [16, 8]]], [
      {name: 'sq', fanInFanOut: true, modules: [['l.0.q', 8, 8]]},
      {name: 'lin', fanInFanOut: false, modules: [['l.0.up', 8, 16]]},
    ])
    const onlySquare = planMerge(s.reader, [s.loaded[0]!], [1])
    assert.is(onlySquare.targets.get('l.0.q.weight')!.transposed, true)
    assert.equal(onlySquare.warnings, [])
    const both = planMerge(s.reader, s.loaded, [1, 1])
    assert.is(both.targets.get('l.0.q.weight')!.transposed, false, 'the non-square up weight says [out, in]')
    assert.is(both.targets.get('l.0.up.weight')!.transposed, false)
    assert.match(both.warnings.join('\n'), /adapter sq: fan_in_fan_out is true, but the base stores 1 of its 1 target weights as \[out, in\]/)
    await s.close()
  } finally {
    dir.cleanup()
  }
})

test('refuses a delta that fits neither orientation and a module without base tensor, naming both', async () => {
  const dir = tempDir()
  try {
    const s = await setup(dir.path, [['l.0.q.weight', [8, 12]]], [
      {name: 'bad', fanInFanOut: false, modules: [['l.0.q', 8, 10]]},
      {name: 'lost', fanInFanOut: false, modules: [['l.1.q', 12, 8]]},
    ])
    assert.throws(() => planMerge(s.reader, [s.loaded[0]!], [1]), (e: unknown) => e instanceof InputError && /delta B·A is \[10, 8\] but base tensor "l\.0\.q\.weight" is \[8, 12\] \(neither \[10, 8\] nor \[8, 10\]\)/.test(e.message))
    assert.throws(() => planMerge(s.reader, [s.loaded[1]!], [1]), (e: unknown) => e instanceof InputError && e.code === 'MERGE_NO_BASE_TENSOR' && /"l\.1\.q".*no tensor "l\.1\.q\.weight" \(it has "l\.0\.q\.weight"/.test(e.message))
    await s.close()
  } finally {
    dir.cleanup()
  }
})

test.run()
