import {appendFileSync, existsSync, mkdirSync, readFileSync, readdirSync, writeFileSync} from 'node:fs'
import {join} from 'node:path'
import {suite} from 'uvu'
import * as assert from 'uvu/assert'
import {fromFloat, toFloat64} from '../../../src/core/dtype.js'
import {LoraAdapter} from '../../../src/core/formats/peft-adapter.js'
import {peftLoraConfig, writeAdapter} from '../../../src/core/formats/peft-adapter-writer.js'
import {SafetensorsFile} from '../../../src/core/formats/safetensors-file.js'
import {summarizePack} from '../../../src/core/pack/inspect-pack.js'
import {packAdapters} from '../../../src/core/pack/pack-adapters.js'
import {PackFile} from '../../../src/core/formats/pack-file.js'
import {unpackAdapter} from '../../../src/core/unpack.js'
import {maxAbs, rejection, tempDir} from '../../helpers/index.js'
import {FixtureAdapter, FixtureModule, assertForwardMatches, sha256File, writeFixtureAdapter} from '../../helpers/pack-fixtures.js'

const test = suite('pack-adapters')

const L = (layer: number, p: string) => `model.layers.${layer}.self_attn.${p}`
const q = (layer: number, r: number): FixtureModule => ({name: L(layer, 'q_proj'), in: 8, out: 8, r})
const v = (layer: number, r: number): FixtureModule => ({name: L(layer, 'v_proj'), in: 8, out: 4, r})
const BASE = 'tiny/base'

/** Four adapters: different ranks, alphas, rslora with rank/alpha patterns, disjoint targets with another key style, an embedding LoRA. */
const HETEROGENEOUS: Record<string, FixtureAdapter> = {
  plain: {seed: 1, modules: [q(0, 4), v(0, 4), q(1, 4), v(1, 4)], config: {r: 4, lora_alpha: 8, target_modules: ['q_proj', 'v_proj'], base_model_name_or_path: BASE}},
  rslora: {
    seed: 2,
    modules: [q(0, 8), v(0, 2), q(1, 8), v(1, 2)],
    config: {r: 8, lora_alpha: 16, use_rslora: true, rank_pattern: {v_proj: 2}, alpha_pattern: {'layers.1.self_attn.q_proj': 3}, target_modules: ['q_proj', 'v_proj'], base_model_name_or_path: BASE},
  },
  disjoint: {
    seed: 3,
    prefix: '',
    infix: 'default',
    modules: [{name: L(0, 'k_proj'), in: 8, out: 4, r: 3}, {name: L(0, 'o_proj'), in: 8, out: 8, r: 3}],
    config: {r: 3, lora_alpha: 6, target_modules: ['k_proj', 'o_proj'], base_model_name_or_path: BASE},
  },
  embed: {
    seed: 4,
    modules: [{name: 'model.embed_tokens', in: 10, out: 8, r: 2, kind: 'embedding'}, q(0, 2)],
    config: {r: 2, lora_alpha: 4, target_modules: ['embed_tokens', 'q_proj'], base_model_name_or_path: BASE},
  },
}

/** Scalings worked out by hand from each config (PEFT's rules). */
const EXPECTED_SCALING: Record<string, Record<string, number>> = {
  plain: {[L(0, 'q_proj')]: 2, [L(0, 'v_proj')]: 2, [L(1, 'q_proj')]: 2, [L(1, 'v_proj')]: 2},
  rslora: {[L(0, 'q_proj')]: 16 / Math.sqrt(8), [L(0, 'v_proj')]: 16 / Math.sqrt(2), [L(1, 'q_proj')]: 3 / Math.sqrt(8), [L(1, 'v_proj')]: 16 / Math.sqrt(2)},
  disjoint: {[L(0, 'k_proj')]: 2, [L(0, 'o_proj')]: 2},
  embed: {'model.embed_tokens': 2, [L(0, 'q_proj')]: 2},
}
const EXPECTED_R: Record<string, number> = {
  'model.embed_tokens': 2,
  [L(0, 'k_proj')]: 3,
  [L(0, 'o_proj')]: 3,
  [L(0, 'q_proj')]: 8,
  [L(0, 'v_proj')]: 4,
  [L(1, 'q_proj')]: 8,
  [L(1, 'v_proj')]: 4,
}

async function writeAll(root: string, specs: Record<string, FixtureAdapter>): Promise<string[]> {
  const dirs: string[] = []
  for (const [name, spec] of Object.entries(specs)) {
    const dir = join(root, name)
    await writeFixtureAdapter(dir, spec)
    dirs.push(dir)
  }
  return dirs
}

/** Nothing but the adapters' folders in `dir`: no output, no temporary file. */
function assertNoOutput(dir: string, adapters: readonly string[]): void {
  const left = readdirSync(dir).filter((n) => !adapters.includes(n))
  assert.equal(left, [], `left behind: ${left.join(', ')}`)
}

test('heterogeneous adapters: module table, R per module, slot order, scalings, padding, hashes', async () => {
  const tmp = tempDir()
  try {
    const dirs = await writeAll(tmp.path, HETEROGENEOUS)
    const out = join(tmp.path, 'pack.safetensors')
    const result = await packAdapters({inputs: dirs, out})
    assert.equal({adapters: result.adapters, slots: result.slots, modules: result.modules, dtype: result.dtype}, {adapters: 4, slots: 5, modules: 7, dtype: 'F32'})
    const pack = await PackFile.open(out)
    try {
      assert.equal(pack.manifest.modules.map((m) => [m.name, m.R]), Object.entries(EXPECTED_R))
      assert.equal(pack.manifest.modules.map((m) => m.kind), ['embedding', 'linear', 'linear', 'linear', 'linear', 'linear', 'linear'])
      assert.equal(pack.adapters.map((a) => [a.name, a.slot]), [['plain', 1], ['rslora', 2], ['disjoint', 3], ['embed', 4]])
      // tensor names are recorded as a key style; no module needs its own names
      assert.equal(pack.adapters.map((a) => [a.key_prefix, a.key_infix]), [['base_model.model.', null], ['base_model.model.', null], ['', 'default'], ['base_model.model.', null]])
      assert.ok(pack.adapters.every((a) => a.modules.every((m) => m.a_key === undefined && m.b_key === undefined)))
      for (const [i, name] of Object.keys(HETEROGENEOUS).entries()) {
        assert.is(pack.adapters[i]!.sha256, sha256File(join(dirs[i]!, 'adapter_model.safetensors')))
      }
      // scaling: F32 of the hand-worked value; 0 in slot 0 and in slots of adapters that do not target the module
      for (const m of pack.manifest.modules) {
        const expected = [0, ...Object.keys(HETEROGENEOUS).map((a) => EXPECTED_SCALING[a]![m.name] ?? 0)]
        assert.equal([...(await pack.readScaling(m.name))], [...new Float32Array(expected)], m.name)
      }
      assert.is(pack.slotModule(L(1, 'q_proj'), 2)!.scaling, 3 / Math.sqrt(8))
      // padding accounting, independently: Σ (S·R − Σ r)·(in + out)·4 bytes
      const used: Record<string, number> = {}
      for (const spec of Object.values(HETEROGENEOUS)) for (const m of spec.modules) used[m.name] = (used[m.name] ?? 0) + m.r
      const dims = Object.fromEntries(Object.values(HETEROGENEOUS).flatMap((s) => s.modules.map((m) => [m.name, m.in + m.out])))
      const padding = Object.entries(EXPECTED_R).reduce((sum, [name, R]) => sum + (5 * R - used[name]!) * dims[name]! * 4, 0)
      assert.is(result.padding_bytes, padding)
      assert.is(summarizePack(pack.file).bytes.padding, padding)
      assert.is(result.bytes_out, readFileSync(out).byteLength)
      assert.is(result.bytes_in, dirs.reduce((s, d) => s + readFileSync(join(d, 'adapter_model.safetensors')).byteLength, 0))
    } finally {
      await pack.close()
    }
  } finally {
    tmp.cleanup()
  }
})

test('slot 0 is all zeros; rank padding and slots of adapters that skip a module are zeros', async () => {
  const tmp = tempDir()
  try {
    const dirs = await writeAll(tmp.path, HETEROGENEOUS)
    const out = join(tmp.path, 'pack.safetensors')
    await packAdapters({inputs: dirs, out})
    const pack = await PackFile.open(out)
    try {
      for (const m of pack.manifest.modules) {
        const a = (await pack.readStack(m.name, 'A')).toFloat64()
        const b = (await pack.readStack(m.name, 'B')).toFloat64()
        const aSlot = m.R * m.in
        const bSlot = m.out * m.R
        assert.is(maxAbs(a.subarray(0, aSlot)), 0, `${m.name} A slot 0`)
        assert.is(maxAbs(b.subarray(0, bSlot)), 0, `${m.name} B slot 0`)
        for (let slot = 1; slot < pack.slots; slot++) {
          const own = pack.slotModule(m.name, slot)
          const r = own?.r ?? 0
          // A rows r..R-1 and B columns r..R-1 are zero; B columns 0..r-1 are not all zero when targeted
          assert.is(maxAbs(a.subarray(slot * aSlot + r * m.in, (slot + 1) * aSlot)), 0, `${m.name} A slot ${slot} padding`)
          for (let row = 0; row < m.out; row++) {
            assert.is(maxAbs(b.subarray(slot * bSlot + row * m.R + r, slot * bSlot + (row + 1) * m.R)), 0, `${m.name} B slot ${slot} padding`)
          }
          if (own) assert.ok(maxAbs(b.subarray(slot * bSlot, (slot + 1) * bSlot)) > 0)
        }
      }
    } finally {
      await pack.close()
    }
  } finally {
    tmp.cleanup()
  }
})

test('float64 forward x·Wᵀ + s[k]·(x·A[k]ᵀ)·B[k]ᵀ from the pack equals the same from each adapter\'s own files', async () => {
  const tmp = tempDir()
  try {
    const dirs = await writeAll(tmp.path, HETEROGENEOUS)
    const out = join(tmp.path, 'pack.safetensors')
    await packAdapters({inputs: dirs, out})
    const pack = await PackFile.open(out)
    try {
      assert.is(await assertForwardMatches(pack, dirs), 12)
    } finally {
      await pack.close()
    }
  } finally {
    tmp.cleanup()
  }
})

test('unpack gives each adapter back: same tensor names, dtypes and bytes, same config and metadata', async () => {
  const tmp = tempDir()
  try {
    const dirs = await writeAll(tmp.path, HETEROGENEOUS)
    const out = join(tmp.path, 'pack.safetensors')
    await packAdapters({inputs: dirs, out})
    for (const [i, name] of Object.keys(HETEROGENEOUS).entries()) {
      const target = join(tmp.path, `unpacked-${name}`)
      const result = await unpackAdapter({file: out, ...(i % 2 ? {adapter: name} : {slot: i + 1}), out: target})
      assert.equal({name: result.name, slot: result.slot, exact: result.exact}, {name, slot: i + 1, exact: true})
      // synthetic sources are written by the same writer, so the whole file is identical
      assert.ok(readFileSync(join(target, 'adapter_model.safetensors')).equals(readFileSync(join(dirs[i]!, 'adapter_model.safetensors'))), name)
      assert.equal(JSON.parse(readFileSync(join(target, 'adapter_config.json'), 'utf8')), JSON.parse(readFileSync(join(dirs[i]!, 'adapter_config.json'), 'utf8')))
    }
  } finally {
    tmp.cleanup()
  }
})

test('batched, direct and chunk-spanning copies, hashed here or on a worker, write the same file', async () => {
  const tmp = tempDir()
  try {
    const dirs = await writeAll(tmp.path, HETEROGENEOUS)
    const files: Buffer[] = []
    // default; one write per slot block (batch smaller than a slot); 100-byte reads, so tensors span chunks; hashing on a worker
    for (const [i, options] of [{}, {batchBytes: 1}, {chunkBytes: 100}, {batchBytes: 2000, chunkBytes: 333, hashInWorker: true}].entries()) {
      const out = join(tmp.path, `p${i}.safetensors`)
      await packAdapters({inputs: dirs, out, ...options})
      files.push(readFileSync(out))
    }
    for (const f of files.slice(1)) assert.ok(f.equals(files[0]!))
  } finally {
    tmp.cleanup()
  }
})

test('batch arenas reused with stale bytes: unfilled slots and rank padding still come out zero', async () => {
  const tmp = tempDir()
  try {
    // q: 4·(8+8)·4 = 256 bytes a slot, v: 4·(8+4)·4 = 192: a 900-byte batch holds 2 slots, so slots 5–6 reuse the arena of slots 1–2
    const only = (seed: number, modules: FixtureModule[]) => mk(seed, modules, {r: 4, rank_pattern: {}})
    const dirs = await writeAll(tmp.path, {
      a1: only(1, [q(0, 4), v(0, 4)]),
      a2: only(2, [q(0, 4), v(0, 4)]),
      a3: only(3, [q(0, 4)]),
      a4: only(4, [v(0, 4)]),
      a5: mk(5, [q(0, 2)], {r: 2}),
      a6: only(6, [v(0, 4)]),
    })
    const files = []
    for (const [i, batchBytes] of [undefined, 900, 1].entries()) {
      const out = join(tmp.path, `p${i}.safetensors`)
      await packAdapters({inputs: dirs, out, batchBytes})
      files.push(readFileSync(out))
    }
    assert.ok(files[1]!.equals(files[0]!))
    assert.ok(files[2]!.equals(files[0]!))
    const pack = await PackFile.open(join(tmp.path, 'p1.safetensors'))
    try {
      const qa = (await pack.readStackSlots(L(0, 'q_proj'), 'A', 5, 2)).toFloat64()
      // slot 5: rows 2..3 are rank padding; slot 6 (a6 has no q) is all zeros
      assert.is(maxAbs(qa.subarray(2 * 8, 4 * 8)), 0)
      assert.is(maxAbs(qa.subarray(4 * 8)), 0)
      assert.ok(maxAbs(qa.subarray(0, 2 * 8)) > 0)
    } finally {
      await pack.close()
    }
  } finally {
    tmp.cleanup()
  }
})

test('dtypes: mixed F16/BF16 pack as F32 with a warning and unpack exactly; --dtype f16 rounds F32 and says so', async () => {
  const tmp = tempDir()
  try {
    const spec = (seed: number, dtype: 'F16' | 'BF16' | 'F32'): FixtureAdapter => ({seed, dtype, modules: [q(0, 4)], config: {r: 4, lora_alpha: 4, target_modules: ['q_proj'], base_model_name_or_path: BASE}})
    const dirs = await writeAll(tmp.path, {h: spec(1, 'F16'), b: spec(2, 'BF16')})
    const mixed = await packAdapters({inputs: dirs, out: join(tmp.path, 'mixed.safetensors')})
    assert.is(mixed.dtype, 'F32')
    assert.match(mixed.warnings.join('\n'), /adapters store different dtypes \(F16: 1 modules, BF16: 1 modules\); packed as F32 \(exact\); choose with --dtype/)
    for (const [slot, dir] of dirs.entries()) {
      const target = join(tmp.path, `u${slot}`)
      const r = await unpackAdapter({file: join(tmp.path, 'mixed.safetensors'), slot: slot + 1, out: target})
      assert.ok(r.exact)
      assert.ok(readFileSync(join(target, 'adapter_model.safetensors')).equals(readFileSync(join(dir, 'adapter_model.safetensors'))))
    }
    const f32 = await writeAll(join(tmp.path, 'f32'), {w: spec(3, 'F32')})
    const narrowed = await packAdapters({inputs: f32, out: join(tmp.path, 'f16.safetensors'), dtype: 'F16'})
    assert.is(narrowed.dtype, 'F16')
    assert.equal(narrowed.warnings, [])
    const pack = await PackFile.open(join(tmp.path, 'f16.safetensors'))
    const source = await LoraAdapter.load(f32[0]!)
    try {
      const block = (await pack.readSlot(L(0, 'q_proj'), 1))!
      assert.is(block.a.dtype, 'F16')
      // the pack holds the source values rounded to nearest-even F16
      assert.ok(Buffer.from(block.a.bytes).equals(Buffer.from(fromFloat('F16', toFloat64('F32', (await source.readA(L(0, 'q_proj'))).bytes)))))
    } finally {
      await pack.close()
      await source.close()
    }
    const r = await unpackAdapter({file: join(tmp.path, 'f16.safetensors'), slot: 1, out: join(tmp.path, 'u-f16')})
    assert.is(r.exact, false)
    assert.is(r.dtype, 'F32')
    assert.match(r.warnings[0]!, /the pack stores F16, narrower than this adapter's F32/)
  } finally {
    tmp.cleanup()
  }
})

test('a module whose tensor names break the adapter\'s key style keeps its own names, and unpacks under them', async () => {
  const tmp = tempDir()
  try {
    const dir = join(tmp.path, 'odd')
    const t = (name: string, shape: number[]) => ({name, dtype: 'F32' as const, shape, data: new Float32Array(shape[0]! * shape[1]!).fill(0.5)})
    await writeAdapter(dir, peftLoraConfig({r: 2, lora_alpha: 2, target_modules: ['q_proj', 'k_proj']}), [
      t('base_model.model.m.q_proj.lora_A.weight', [2, 4]),
      t('base_model.model.m.q_proj.lora_B.weight', [4, 2]),
      t('m.k_proj.lora_A.custom.weight', [2, 4]),
      t('m.k_proj.lora_B.custom.weight', [4, 2]),
    ])
    const out = join(tmp.path, 'p.safetensors')
    await packAdapters({inputs: [dir], out})
    const pack = await PackFile.open(out)
    const entry = pack.adapters[0]!
    await pack.close()
    assert.equal([entry.key_prefix, entry.key_infix], ['base_model.model.', null])
    assert.equal(entry.modules.map((m) => [m.name, m.a_key ?? null, m.b_key ?? null]), [
      ['m.q_proj', null, null],
      ['m.k_proj', 'm.k_proj.lora_A.custom.weight', 'm.k_proj.lora_B.custom.weight'],
    ])
    await unpackAdapter({file: out, slot: 1, out: join(tmp.path, 'u')})
    assert.ok(readFileSync(join(tmp.path, 'u/adapter_model.safetensors')).equals(readFileSync(join(dir, 'adapter_model.safetensors'))))
  } finally {
    tmp.cleanup()
  }
})

test('modules_to_save tensors are listed in the manifest, not packed, and reported', async () => {
  const tmp = tempDir()
  try {
    const dirs = await writeAll(tmp.path, {
      cls: {seed: 5, modules: [q(0, 2)], extras: [{name: 'base_model.model.classifier.weight', shape: [3, 8]}], config: {r: 2, lora_alpha: 2, target_modules: ['q_proj'], modules_to_save: ['classifier']}},
    })
    const out = join(tmp.path, 'p.safetensors')
    const result = await packAdapters({inputs: dirs, out})
    assert.match(result.warnings.join('\n'), /1 adapter has 1 tensor that is not a LoRA pair \(modules_to_save or heads, e\.g\. "base_model\.model\.classifier\.weight" in "cls"\): not packed/)
    const pack = await PackFile.open(out)
    assert.equal(pack.adapters[0]!.modules_to_save, ['classifier'])
    assert.equal(pack.adapters[0]!.extra_tensors, ['base_model.model.classifier.weight'])
    assert.equal([...pack.file.tensors.keys()].filter((n) => n.includes('classifier')), [])
    await pack.close()
    const u = await unpackAdapter({file: out, adapter: 'cls', out: join(tmp.path, 'u')})
    assert.match(u.warnings.join('\n'), /1 tensor of the source \(modules_to_save or heads, e\.g\. "base_model\.model\.classifier\.weight"\) were not packed/)
  } finally {
    tmp.cleanup()
  }
})

const mk = (seed: number, modules: FixtureModule[], config: Record<string, unknown> = {}): FixtureAdapter => ({
  seed,
  modules,
  config: {r: modules[0]!.r, lora_alpha: 8, target_modules: ['q_proj', 'v_proj'], base_model_name_or_path: BASE, ...config},
})

const refusals: Array<{name: string; adapters: Record<string, FixtureAdapter>; inputs?: (dirs: string[], root: string) => string[]; options?: Record<string, unknown>; code: string; message: RegExp}> = [
  {
    name: 'a module whose dims differ between adapters, naming both',
    adapters: {first: mk(1, [q(0, 4)]), second: mk(2, [{name: L(0, 'q_proj'), in: 16, out: 8, r: 4}])},
    code: 'PACK_DIMS_MISMATCH',
    message: /module "model\.layers\.0\.self_attn\.q_proj" is linear \[out 8, in 8\] in adapter "first" \(.*first\) but linear \[out 8, in 16\] in adapter "second" \(.*second\)/,
  },
  {
    name: 'a DoRA adapter',
    adapters: {ok: mk(1, [q(0, 4)]), dora: {...mk(2, [q(0, 4)], {use_dora: true}), dora: true}},
    code: 'ADAPTER_DORA_UNSUPPORTED',
    message: /dora: DoRA adapter/,
  },
  {
    name: 'different base models without --allow-mixed-base',
    adapters: {a: mk(1, [q(0, 4)]), b: mk(2, [q(0, 4)], {base_model_name_or_path: 'other/base'})},
    code: 'PACK_MIXED_BASE',
    message: /adapters disagree on the base model: "tiny\/base" \(adapter "a"\) vs "other\/base" \(adapter "b"\); pass --allow-mixed-base/,
  },
  {
    name: 'a missing adapter folder',
    adapters: {a: mk(1, [q(0, 4)])},
    inputs: (dirs, root) => [...dirs, join(root, 'nope')],
    code: 'IO_ENOENT',
    message: /read adapter .*nope: no such file or directory/,
  },
  {
    name: 'an adapter folder without its weights',
    adapters: {a: mk(1, [q(0, 4)])},
    inputs: (dirs, root) => {
      mkdirSync(join(root, 'empty'))
      writeFileSync(join(root, 'empty/adapter_config.json'), '{"peft_type": "LORA", "r": 4}')
      return [...dirs, join(root, 'empty')]
    },
    code: 'ADAPTER_NO_WEIGHTS',
    message: /empty: no adapter_model\.safetensors/,
  },
  {
    name: 'a glob that matches nothing',
    adapters: {a: mk(1, [q(0, 4)])},
    inputs: (dirs, root) => [...dirs, join(root, 'zz-*')],
    code: 'PACK_GLOB_NO_MATCH',
    message: /glob ".*zz-\*" matches nothing/,
  },
  {
    name: 'two adapters with one name',
    adapters: {a: mk(1, [q(0, 4)])},
    inputs: (dirs, root) => [...dirs, join(root, 'more/a')],
    code: 'PACK_DUPLICATE_NAME',
    message: /adapters .*\/a and .*\/more\/a are both named "a"/,
  },
]

for (const c of refusals) {
  test(`refused, with no output left: ${c.name}`, async () => {
    const tmp = tempDir()
    try {
      const dirs = await writeAll(tmp.path, c.adapters)
      if (c.name === 'two adapters with one name') await writeFixtureAdapter(join(tmp.path, 'more/a'), mk(3, [q(0, 4)]))
      const inputs = c.inputs ? c.inputs(dirs, tmp.path) : dirs
      const before = readdirSync(tmp.path)
      const e = await rejection(packAdapters({inputs, out: join(tmp.path, 'pack.safetensors'), ...c.options}))
      assert.is(e.code, c.code, e.message)
      assert.is(e.exitCode, 2)
      assert.match(e.message, c.message)
      assert.not.match(e.message, /\n/)
      assertNoOutput(tmp.path, before)
    } finally {
      tmp.cleanup()
    }
  })
}

test('--allow-mixed-base packs adapters of differently named bases whose dims agree', async () => {
  const tmp = tempDir()
  try {
    const dirs = await writeAll(tmp.path, {a: mk(1, [q(0, 4)]), b: mk(2, [q(0, 2)], {base_model_name_or_path: 'other/base', r: 2})})
    const r = await packAdapters({inputs: dirs, out: join(tmp.path, 'p.safetensors'), allowMixedBase: true})
    assert.is(r.slots, 3)
    const pack = await PackFile.open(join(tmp.path, 'p.safetensors'))
    assert.is(pack.manifest.base_model_name_or_path, null)
    assert.equal(pack.adapters.map((a) => a.base_model_name_or_path), [BASE, 'other/base'])
    await pack.close()
  } finally {
    tmp.cleanup()
  }
})

test('--names-from config takes adapter_name (or name) from each config; a config without one is refused', async () => {
  const tmp = tempDir()
  try {
    const dirs = await writeAll(tmp.path, {x: mk(1, [q(0, 4)], {adapter_name: 'support-bot'}), y: mk(2, [q(0, 4)], {name: 'sql-helper'})})
    const out = join(tmp.path, 'p.safetensors')
    await packAdapters({inputs: dirs, out, namesFrom: 'config'})
    const pack = await PackFile.open(out)
    assert.equal(pack.adapters.map((a) => a.name), ['support-bot', 'sql-helper'])
    await pack.close()
    const more = await writeAll(join(tmp.path, 'more'), {z: mk(3, [q(0, 4)])})
    const e = await rejection(packAdapters({inputs: [...dirs, ...more], out: join(tmp.path, 'p2.safetensors'), namesFrom: 'config'}))
    assert.is(e.code, 'PACK_NO_CONFIG_NAME')
    assert.match(e.message, /read .*z\/adapter_config\.json: no "adapter_name" or "name" string to take the adapter's name from \(use --names-from dir\)/)
  } finally {
    tmp.cleanup()
  }
})

test('an existing output is kept unless forced', async () => {
  const tmp = tempDir()
  try {
    const dirs = await writeAll(tmp.path, {a: mk(1, [q(0, 4)])})
    const out = join(tmp.path, 'p.safetensors')
    writeFileSync(out, 'keep me')
    const e = await rejection(packAdapters({inputs: dirs, out}))
    assert.is(e.code, 'OUTPUT_EXISTS')
    assert.is(readFileSync(out, 'utf8'), 'keep me')
    await packAdapters({inputs: dirs, out, force: true})
    assert.is((await PackFile.open(out).then(async (p) => (await p.close(), p.slots))), 2)
  } finally {
    tmp.cleanup()
  }
})

test('a source that changes between planning and copying is refused, no output left', async () => {
  const tmp = tempDir()
  try {
    const dirs = await writeAll(tmp.path, {a: mk(1, [q(0, 4)]), b: mk(2, [q(0, 4)])})
    const before = readdirSync(tmp.path)
    const e = await rejection(
      packAdapters({
        inputs: dirs,
        out: join(tmp.path, 'p.safetensors'),
        onProgress: (p) => {
          if (p.stage === 'headers' && p.done === p.total) appendFileSync(join(dirs[1]!, 'adapter_model.safetensors'), 'xx')
        },
      }),
    )
    assert.is(e.code, 'PACK_SOURCE_CHANGED')
    assert.match(e.message, /b\/adapter_model\.safetensors: the file changed while packing/)
    assertNoOutput(tmp.path, before)
    assert.not.ok(existsSync(join(tmp.path, 'p.safetensors')))
  } finally {
    tmp.cleanup()
  }
})

test('the pack is a valid safetensors file that inspect summarizes', async () => {
  const tmp = tempDir()
  try {
    const dirs = await writeAll(tmp.path, HETEROGENEOUS)
    const out = join(tmp.path, 'pack.safetensors')
    await packAdapters({inputs: dirs, out})
    const file = await SafetensorsFile.open(out)
    try {
      const s = summarizePack(file)
      assert.is(s.slots, 5)
      assert.is(s.adapters, 4)
      const q0 = s.modules.find((m) => m.name === L(0, 'q_proj'))!
      // q0: R 8, adapters plain (4), rslora (8), embed (2); 5 slots of 8·(8+8)·4 bytes
      assert.equal({R: q0.R, adapters: q0.adapters, r_min: q0.r_min, r_max: q0.r_max, bytes: q0.bytes, padding: q0.padding_bytes}, {R: 8, adapters: 3, r_min: 2, r_max: 8, bytes: 5 * 8 * 16 * 4, padding: (5 * 8 - 14) * 16 * 4})
      const b = s.bytes
      assert.is(b.header + b.stacks + b.scaling, b.file)
      assert.is(b.adapter_values + b.rank_padding + b.empty_slots + b.null_slot, b.stacks)
      assert.is(b.padding_share, b.padding / b.file)
    } finally {
      await file.close()
    }
  } finally {
    tmp.cleanup()
  }
})

test.run()
