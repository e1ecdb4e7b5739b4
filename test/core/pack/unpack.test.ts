import {readFileSync, readdirSync, existsSync} from 'node:fs'
import {join} from 'node:path'
import {suite} from 'uvu'
import * as assert from 'uvu/assert'
import {LoraAdapter} from '../../../src/core/formats/peft-adapter.js'
import {SafetensorsFile} from '../../../src/core/formats/safetensors-file.js'
import {packAdapters} from '../../../src/core/pack/pack-adapters.js'
import {PackFile} from '../../../src/core/formats/pack-file.js'
import {holdsExactly} from '../../../src/core/pack/unpack.js'
import {unpackAdapter} from '../../../src/core/unpack.js'
import {REAL_ADAPTERS, realAdaptersMissing, rejection, skipIf, tempDir} from '../../helpers/index.js'
import {assertForwardMatches, sha256File} from '../../helpers/pack-fixtures.js'

const test = suite('unpack')
const real = realAdaptersMissing() === undefined
const realTest = skipIf(test, realAdaptersMissing())

/** The PEFT adapter folders of the corpus (top level, with a config). */
const realAdapters = real ? readdirSync(REAL_ADAPTERS).filter((n) => !n.startsWith('_') && existsSync(join(REAL_ADAPTERS, n, 'adapter_config.json'))).sort() : []

/**
 * The unpacked folder holds exactly the source's LoRA tensors, byte for byte
 * under the same names and dtypes, the same adapter_config.json bytes and metadata.
 * @returns whether the source has tensors that were not packed
 */
async function assertSameAdapter(source: string, unpacked: string): Promise<boolean> {
  const a = await LoraAdapter.load(source)
  const b = await SafetensorsFile.open(join(unpacked, 'adapter_model.safetensors'))
  try {
    const keys = [...a.modules.values()].flatMap((m) => [m.aKey, m.bKey]).sort()
    assert.equal([...b.tensors.keys()].sort(), keys, source)
    for (const key of keys) {
      const x = a.file.info(key)
      const y = b.info(key)
      assert.equal([y.dtype, y.shape], [x.dtype, x.shape], key)
      assert.ok(Buffer.from(await b.readBytes(key)).equals(Buffer.from(await a.file.readBytes(key))), `${source}: ${key} bytes differ`)
    }
    assert.equal(Object.fromEntries(b.metadata), Object.fromEntries(a.file.metadata))
    // adapter_config.json: the source's own bytes
    assert.ok(readFileSync(join(unpacked, 'adapter_config.json')).equals(readFileSync(join(source, 'adapter_config.json'))), `${source}: adapter_config.json bytes differ`)
    return a.extraTensors.length > 0
  } finally {
    await a.close()
    await b.close()
  }
}

realTest('every real adapter packs alone and unpacks byte-exact (whole file identical when nothing was left out)', async () => {
  const tmp = tempDir()
  try {
    assert.ok(realAdapters.length >= 19, `found ${realAdapters.length} real adapters`)
    for (const name of realAdapters) {
      const source = join(REAL_ADAPTERS, name)
      const out = join(tmp.path, `${name}.safetensors`)
      await packAdapters({inputs: [source], out})
      const target = join(tmp.path, name)
      const r = await unpackAdapter({file: out, slot: 1, out: target})
      assert.ok(r.exact, name)
      const hadExtras = await assertSameAdapter(source, target)
      if (!hadExtras) {
        // PEFT's files (written by the Rust safetensors library) come back identical to the byte
        assert.is(sha256File(join(target, 'adapter_model.safetensors')), sha256File(join(source, 'adapter_model.safetensors')), name)
      }
    }
  } finally {
    tmp.cleanup()
  }
})

/** Groups of real adapters whose shared modules have the same dims. */
const GROUPS: Array<{adapters: string[]; mixedBase?: boolean; modules: number}> = [
  // same base, ranks 4, 4, 8, alphas 1, 16, 8; fan_in_fan_out false, false, true on c_attn
  {adapters: ['gpt2-r4a1-cattn-cproj', 'gpt2-r4a16-cattn-cproj', 'gpt2-seqcls-cattn-r8'], modules: 36},
  // gpt2 and distilgpt2 (6 of its 12 layers), different base names
  {adapters: ['gpt2-r4a1-cattn-cproj', 'distilgpt2-cattn-fifofalse'], mixedBase: true, modules: 36},
  // the same base; one adapter's targets sit inside modules_to_save wrappers
  {adapters: ['distilbert-seqcls-qv-r8', 'distilbert-classifier-target-odd'], modules: 13},
  // disjoint module paths (bert.* and roberta.* without the PEFT prefix)
  {adapters: ['bert-dense-suffix-r4', 'codebert-automodel-qv-r8'], mixedBase: true, modules: 97},
]

realTest('compatible real adapters pack together: the forward through the pack matches, each unpacks byte-exact', async () => {
  const tmp = tempDir()
  try {
    for (const [g, group] of GROUPS.entries()) {
      const dirs = group.adapters.map((n) => join(REAL_ADAPTERS, n))
      const out = join(tmp.path, `group-${g}.safetensors`)
      const result = await packAdapters({inputs: dirs, out, allowMixedBase: group.mixedBase})
      assert.is(result.modules, group.modules, group.adapters.join(' + '))
      const pack = await PackFile.open(out)
      try {
        // float64 forward through the pack vs each adapter's own files, on the first 2 modules of each
        const moduleCounts = pack.adapters.map((a) => Math.min(2, a.modules.length))
        assert.ok(moduleCounts.every((n) => n > 0))
        assert.is(await assertForwardMatches(pack, dirs, 2), moduleCounts.reduce((x, y) => x + y, 0))
      } finally {
        await pack.close()
      }
      for (const [i, dir] of dirs.entries()) {
        const target = join(tmp.path, `g${g}-${i}`)
        await unpackAdapter({file: out, adapter: group.adapters[i], out: target})
        await assertSameAdapter(dir, target)
      }
    }
  } finally {
    tmp.cleanup()
  }
})

realTest('gpt2 adapters that disagree on fan_in_fan_out: warned, module marked true', async () => {
  const tmp = tempDir()
  try {
    const out = join(tmp.path, 'p.safetensors')
    const r = await packAdapters({inputs: GROUPS[0]!.adapters.map((n) => join(REAL_ADAPTERS, n)), out})
    assert.match(r.warnings.join('\n'), /adapters disagree on fan_in_fan_out for 12 modules \(e\.g\. "transformer\.h\.0\.attn\.c_attn"\)/)
    const pack = await PackFile.open(out)
    assert.ok(pack.module('transformer.h.0.attn.c_attn').fan_in_fan_out)
    assert.not.ok(pack.module('transformer.h.0.attn.c_proj').fan_in_fan_out)
    await pack.close()
  } finally {
    tmp.cleanup()
  }
})

test('which dtypes hold which exactly', () => {
  assert.ok(holdsExactly('F32', 'F16'))
  assert.ok(holdsExactly('F32', 'BF16'))
  assert.ok(holdsExactly('F16', 'F16'))
  assert.ok(holdsExactly('F64', 'F32'))
  assert.not.ok(holdsExactly('F16', 'F32'))
  assert.not.ok(holdsExactly('BF16', 'F16'))
  assert.not.ok(holdsExactly('F16', 'BF16'))
})

test('unpack refuses: neither or both of adapter and slot, a file that is not a pack', async () => {
  const tmp = tempDir()
  try {
    const notPack = join(tmp.path, 'x.safetensors')
    const {writeSafetensors} = await import('../../../src/core/formats/safetensors-writer.js')
    await writeSafetensors(notPack, [{name: 'w', dtype: 'F32', shape: [1], data: new Float32Array(1)}])
    const out = join(tmp.path, 'out')
    const both = await rejection(unpackAdapter({file: notPack, adapter: 'a', slot: 1, out}))
    assert.is(both.code, 'UNPACK_WHICH')
    const neither = await rejection(unpackAdapter({file: notPack, out}))
    assert.is(neither.code, 'UNPACK_WHICH')
    const foreign = await rejection(unpackAdapter({file: notPack, slot: 1, out}))
    assert.is(foreign.code, 'PACK_NOT_A_PACK')
    assert.match(foreign.message, /x\.safetensors: not a lora-pack file \(__metadata__\.format is absent, expected "lora-pack"\)/)
    assert.not.ok(existsSync(out))
  } finally {
    tmp.cleanup()
  }
})

test.run()
