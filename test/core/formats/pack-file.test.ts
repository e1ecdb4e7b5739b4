import {join} from 'node:path'
import {suite} from 'uvu'
import * as assert from 'uvu/assert'
import {writeSafetensors} from '../../../src/core/formats/safetensors-writer.js'
import {PACK_FORMAT, PACK_FORMAT_VERSION, parseManifest} from '../../../src/core/formats/pack-manifest.js'
import {PackFile, packTensorNames} from '../../../src/core/formats/pack-file.js'
import {rejection, tempDir} from '../../helpers/index.js'

const test = suite('pack-file')

/**
 * A hand-made pack: module `m.q` (in 3, out 2, R 2), slot 1 adapter "one"
 * of rank 1, slot 2 adapter "two" of rank 2; F32.
 *   A [3, 2, 3]: slot 0 zeros; slot 1 row 0 = 1 2 3, row 1 zeros; slot 2 rows 4 5 6 / 7 8 9
 *   B [3, 2, 2]: slot 1 column 0 = 10 11 (column 1 zeros); slot 2 = [[12, 13], [14, 15]]
 */
function fixtureManifest(): Record<string, any> {
  const adapter = (name: string, slot: number, r: number, scaling: number) => ({
    name,
    slot,
    source: `/adapters/${name}`,
    sha256: 'ab'.repeat(32),
    r,
    lora_alpha: r * scaling,
    use_rslora: false,
    rank_pattern: {},
    alpha_pattern: {},
    fan_in_fan_out: false,
    base_model_name_or_path: 'base',
    target_modules: ['q'],
    modules_to_save: [],
    extra_tensors: [],
    dtype: 'F32',
    key_prefix: 'base_model.model.',
    key_infix: null,
    modules: [{name: 'm.q', r, alpha: r * scaling, scaling}],
    safetensors_metadata: {format: 'pt'},
    config: {r, lora_alpha: r * scaling, peft_type: 'LORA'},
  })
  return {
    tool: 'lora-toolkit',
    tool_version: '0.0.0',
    dtype: 'F32',
    slots: 3,
    base_model_name_or_path: 'base',
    modules: [{name: 'm.q', kind: 'linear', in: 3, out: 2, R: 2, fan_in_fan_out: false}],
    adapters: [adapter('one', 1, 1, 2), adapter('two', 2, 2, 0.5)],
  }
}

async function writeFixture(path: string, manifest: Record<string, any> = fixtureManifest(), format = PACK_FORMAT): Promise<void> {
  const a = new Float32Array(3 * 2 * 3)
  a.set([1, 2, 3], 1 * 6)
  a.set([4, 5, 6, 7, 8, 9], 2 * 6)
  const b = new Float32Array(3 * 2 * 2)
  b.set([10, 0, 11, 0], 1 * 4)
  b.set([12, 13, 14, 15], 2 * 4)
  const names = packTensorNames({name: 'm.q', kind: 'linear'})
  await writeSafetensors(
    path,
    [
      {name: names.a, dtype: 'F32', shape: [3, 2, 3], data: a},
      {name: names.b, dtype: 'F32', shape: [3, 2, 2], data: b},
      {name: names.scaling, dtype: 'F32', shape: [3], data: new Float32Array([0, 2, 0.5])},
    ],
    {metadata: {format, format_version: PACK_FORMAT_VERSION, manifest: JSON.stringify(manifest)}},
  )
}

test('tensor names follow the format: P.lora_A, P.lora_B, P.lora_scaling; embeddings P.lora_embedding_A/B', () => {
  assert.equal(packTensorNames({name: 'model.layers.0.self_attn.q_proj', kind: 'linear'}), {
    a: 'model.layers.0.self_attn.q_proj.lora_A',
    b: 'model.layers.0.self_attn.q_proj.lora_B',
    scaling: 'model.layers.0.self_attn.q_proj.lora_scaling',
  })
  assert.equal(packTensorNames({name: 'model.embed_tokens', kind: 'embedding'}), {
    a: 'model.embed_tokens.lora_embedding_A',
    b: 'model.embed_tokens.lora_embedding_B',
    scaling: 'model.embed_tokens.lora_scaling',
  })
})

test('reads stacks, slot ranges, scaling, and slots cut back to their own rank', async () => {
  const tmp = tempDir()
  try {
    const path = join(tmp.path, 'p.safetensors')
    await writeFixture(path)
    const pack = await PackFile.open(path)
    try {
      assert.is(pack.slots, 3)
      assert.equal([...pack.modules.keys()], ['m.q'])
      const a = await pack.readStack('m.q', 'A')
      assert.equal(a.shape, [3, 2, 3])
      assert.equal([...a.toFloat32().subarray(0, 6)], [0, 0, 0, 0, 0, 0])
      const b = await pack.readStackSlots('m.q', 'B', 1, 2)
      assert.equal(b.shape, [2, 2, 2])
      assert.equal([...b.toFloat32()], [10, 0, 11, 0, 12, 13, 14, 15])
      assert.equal([...(await pack.readScaling('m.q'))], [0, 2, 0.5])
      const one = (await pack.readSlot('m.q', 1))!
      assert.equal(one.a.shape, [1, 3])
      assert.equal([...one.a.toFloat32()], [1, 2, 3])
      assert.equal(one.b.shape, [2, 1])
      assert.equal([...one.b.toFloat32()], [10, 11])
      assert.is(one.scaling, 2)
      const two = (await pack.readSlot('m.q', 2))!
      assert.equal([...two.a.toFloat32()], [4, 5, 6, 7, 8, 9])
      assert.equal([...two.b.toFloat32()], [12, 13, 14, 15])
      assert.is(pack.adapterByName('two').slot, 2)
      assert.is(pack.adapterBySlot(1).name, 'one')
      const noSlot = await rejection(Promise.resolve().then(() => pack.adapterBySlot(0)))
      assert.is(noSlot.code, 'PACK_NO_SUCH_SLOT')
      assert.match(noSlot.message, /slot 0 holds no adapter \(adapters are in slots 1\.\.2; slot 0 is the null adapter\)/)
      const noName = await rejection(Promise.resolve().then(() => pack.adapterByName('three')))
      assert.match(noName.message, /no adapter named "three" \(it holds 2: "one", "two"\)/)
    } finally {
      await pack.close()
    }
  } finally {
    tmp.cleanup()
  }
})

test('a shared-B or foreign file is refused with its format named', async () => {
  const tmp = tempDir()
  try {
    const path = join(tmp.path, 'p.safetensors')
    await writeFixture(path, fixtureManifest(), 'lora-pack-shared-b')
    const e = await rejection(PackFile.open(path))
    assert.is(e.code, 'PACK_NOT_A_PACK')
    assert.is(e.exitCode, 2)
    assert.match(e.message, /not a lora-pack file \(__metadata__\.format is "lora-pack-shared-b", expected "lora-pack"\): it is a shared-B compressed pack/)
  } finally {
    tmp.cleanup()
  }
})

test('tensors that disagree with the manifest are refused', async () => {
  const tmp = tempDir()
  try {
    const path = join(tmp.path, 'p.safetensors')
    const m = fixtureManifest()
    m.modules[0].R = 3
    m.adapters[1].modules[0].r = 3
    await writeFixture(path, m)
    const e = await rejection(PackFile.open(path))
    assert.is(e.code, 'PACK_TENSOR_MISMATCH')
    assert.match(e.message, /tensor "m\.q\.lora_A" is F32 \[3, 2, 3\] but the manifest says F32 \[3, 3, 3\]/)
  } finally {
    tmp.cleanup()
  }
})

const file = 'x.safetensors'
const badManifests: Array<{name: string; edit: (m: Record<string, any>) => unknown; message: RegExp}> = [
  {name: 'not JSON', edit: () => '{"slots": 3,', message: /manifest is not valid JSON/},
  {name: 'duplicate key', edit: () => '{"slots": 3, "slots": 4}', message: /manifest is not valid JSON \(key "slots" appears twice/},
  {name: 'slots disagree with adapters', edit: (m) => ((m.slots = 4), m), message: /manifest slots is 4 but there are 2 adapters \(expected slots = adapters \+ 1\)/},
  {name: 'slots out of order', edit: (m) => ((m.adapters[1].slot = 1), m), message: /manifest adapters\[1\]\.slot is 1 \(expected 2/},
  {name: 'duplicate adapter name', edit: (m) => ((m.adapters[1].name = 'one'), m), message: /manifest adapters\[1\]\.name "one" is used by two adapters/},
  {name: 'duplicate module', edit: (m) => (m.modules.push({...m.modules[0]}), m), message: /manifest modules names module "m\.q" twice/},
  {name: 'unknown module', edit: (m) => ((m.adapters[0].modules[0].name = 'm.k'), m), message: /manifest adapters\[0\]\.modules\[0\]\.name "m\.k" is not in the module table/},
  {name: 'rank above R', edit: (m) => ((m.adapters[0].modules[0].r = 5), m), message: /manifest adapters\[0\]\.modules\[0\]\.r is 5, larger than the module's R = 2/},
  {name: 'negative dims', edit: (m) => ((m.modules[0].in = -3), m), message: /manifest modules\[0\]\.in must be a positive integer \(got -3\)/},
  {name: 'integer dtype', edit: (m) => ((m.dtype = 'I32'), m), message: /manifest dtype must be a float dtype \(got "I32"\)/},
  {name: 'bad kind', edit: (m) => ((m.modules[0].kind = 'conv'), m), message: /manifest modules\[0\]\.kind must be "linear" or "embedding"/},
  {name: 'bad hash', edit: (m) => ((m.adapters[0].sha256 = 'xyz'), m), message: /manifest adapters\[0\]\.sha256 must be 64 lowercase hex digits/},
  {name: 'half a key pair', edit: (m) => ((m.adapters[0].modules[0].a_key = 'a'), m), message: /manifest adapters\[0\]\.modules\[0\] needs both a_key and b_key, or neither/},
  {name: 'config not an object', edit: (m) => ((m.adapters[0].config = [1]), m), message: /manifest adapters\[0\]\.config must be an object/},
  {name: 'scaling not a number', edit: (m) => ((m.adapters[0].modules[0].scaling = 'x'), m), message: /manifest adapters\[0\]\.modules\[0\]\.scaling must be a finite number/},
]

for (const c of badManifests) {
  test(`manifest refused: ${c.name}`, () => {
    const edited = c.edit(fixtureManifest())
    const text = typeof edited === 'string' ? edited : JSON.stringify(edited)
    try {
      parseManifest(text, file)
      assert.unreachable('should have thrown')
    } catch (error) {
      const e = error as Error & {code?: string; exitCode?: number}
      assert.is(e.code, 'PACK_BAD_MANIFEST')
      assert.is(e.exitCode, 2)
      assert.match(e.message, /^read x\.safetensors: manifest /)
      assert.match(e.message, c.message)
    }
  })
}

test('a valid manifest parses to typed fields; a module named __proto__ is just a name', () => {
  const m = fixtureManifest()
  m.modules[0].name = '__proto__'
  for (const a of m.adapters) a.modules[0].name = '__proto__'
  m.adapters[0].rank_pattern = {__proto__x: 4}
  const parsed = parseManifest(JSON.stringify(m), file)
  assert.is(parsed.modules[0]!.name, '__proto__')
  assert.is(parsed.adapters[1]!.modules[0]!.scaling, 0.5)
  assert.equal({...parsed.adapters[0]!.rank_pattern}, {__proto__x: 4})
  assert.is(parsed.adapters[0]!.config.peft_type, 'LORA')
})

test.run()
