import {existsSync, mkdirSync, readdirSync, writeFileSync} from 'node:fs'
import {join} from 'node:path'
import {suite} from 'uvu'
import * as assert from 'uvu/assert'
import {compressFile, sweepFile} from '../../../src/core/compress/compress-file.js'
import {SharedBFile} from '../../../src/core/formats/shared-b-file.js'
import {LoraAdapter} from '../../../src/core/formats/peft-adapter.js'
import {writeSafetensors} from '../../../src/core/formats/safetensors-writer.js'
import {inspectPath} from '../../../src/core/inspect.js'
import {MatMulEngine} from '../../../src/core/linalg/matmul-engine.js'
import {packAdapters} from '../../../src/core/pack/pack-adapters.js'
import {unpackAdapter} from '../../../src/core/unpack.js'
import {synthesizeAdapters} from '../../../src/core/synth/adapters.js'
import {REAL_ADAPTERS, realAdaptersMissing, rejection, skipIf, tempDir} from '../../helpers/index.js'
import {writeFixtureAdapter} from '../../helpers/pack-fixtures.js'
import {leftSingularVectors, product, projectionError, relativeDifference} from '../../helpers/reference-svd.js'

const test = suite('compress compress-file')
const engine = new MatMulEngine(2)
const tmp = tempDir('lora-compress-')
const adapters = join(tmp.path, 'ad')
const packPath = join(tmp.path, 'pack.safetensors')
const dims = {hidden: 24, intermediate: 40, layers: 1}

test.before(async () => {
  await synthesizeAdapters({...dims, out: adapters, count: 5, ranks: [2, 4], targets: ['q_proj', 'down_proj'], dtype: 'F32', seed: 4, sharedSubspace: 0.6})
  await packAdapters({inputs: [adapters], out: packPath})
})

test.after(async () => {
  await engine.release()
  tmp.cleanup()
})

/** ΔW of every adapter on `module`, from the adapter folders themselves (float64). */
async function sourceDeltas(module: string): Promise<Array<{name: string; delta: Float64Array; out: number; in: number}>> {
  const out = []
  for (const name of readdirSync(adapters).filter((n) => !n.startsWith('.')).sort()) {
    const adapter = await LoraAdapter.load(join(adapters, name))
    const m = adapter.modules.get(module)
    if (m) {
      const a = (await adapter.readA(module)).toFloat64()
      const b = (await adapter.readB(module)).toFloat64()
      const delta = product(b, m.out, m.r, a, m.in)
      for (let i = 0; i < delta.length; i++) delta[i]! *= m.scaling
      out.push({name, delta, out: m.out, in: m.in})
    }
    await adapter.close()
  }
  return out
}

test('every reported error equals ‖ΔW − B_shared A′‖/‖ΔW‖ formed from the file and the source adapters, and the F32 optimum', async () => {
  const out = join(tmp.path, 'rank3.safetensors')
  const report = await compressFile({inputs: [packPath], out, selection: {rank: 3}, dtype: 'F32', engine})
  const file = await SharedBFile.open(out)
  try {
    assert.is(report.modules.length, 2)
    for (const row of report.modules) {
      const deltas = await sourceDeltas(row.name)
      const shared = (await file.readSharedB(row.name)).toFloat64()
      const m = file.module(row.name)
      assert.is(row.K, 3)
      const explicit: number[] = []
      for (const [i, d] of deltas.entries()) {
        const a = (await file.readA(row.name, i + 1)).toFloat64()
        const e = relativeDifference(d.delta, product(shared, m.out, 3, a, m.in))
        explicit.push(e)
        assert.ok(Math.abs(file.errors[row.name]!.errors[i + 1]! - e) < 1e-9, 'the header holds the measured error')
      }
      assert.ok(Math.abs(row.error_max - Math.max(...explicit)) < 1e-9)
      assert.ok(Math.abs(row.error_mean - explicit.reduce((s, x) => s + x, 0) / explicit.length) < 1e-9)
      // the optimum: a float64 SVD of the explicit concatenation [ΔW_1 … ΔW_N]
      const n = deltas.length
      const cols = n * m.in
      const x = new Float64Array(m.out * cols)
      deltas.forEach((d, t) => {
        for (let i = 0; i < m.out; i++) for (let j = 0; j < m.in; j++) x[i * cols + t * m.in + j] = d.delta[i * m.in + j]!
      })
      const {u} = leftSingularVectors(x, m.out, cols)
      deltas.forEach((d, i) => assert.ok(Math.abs(explicit[i]! - projectionError(d.delta, m.out, m.in, u, m.out, 3)) < 1e-6))
      assert.is(file.errors[row.name]!.errors[0], null, 'slot 0 holds no adapter')
      const zero = (await file.readA(row.name, 0)).toFloat64()
      assert.ok(zero.every((v) => v === 0), 'slot 0 is zero')
    }
    assert.is(report.totals.worst_adapter!.error, Math.max(...report.modules.map((m) => m.error_max)))
    assert.is(report.totals.bytes_after, report.modules.reduce((s, m) => s + m.bytes_after, 0))
  } finally {
    await file.close()
  }
})

test('bytes_before are the input stacks, bytes_after the tensors as written', async () => {
  const out = join(tmp.path, 'bytes.safetensors')
  const report = await compressFile({inputs: [packPath], out, selection: {rank: 2}, engine})
  const file = await SharedBFile.open(out)
  try {
    const summary = await inspectPath(packPath)
    const packModules = (summary.pack as {modules: Array<{name: string; bytes: number}>}).modules
    for (const row of report.modules) {
      assert.is(row.bytes_before, packModules.find((m) => m.name === row.name)!.bytes)
      const m = file.module(row.name)
      const names = [`${m.name}.lora_A`, `${m.name}.lora_B_shared`]
      assert.is(row.bytes_after, names.reduce((s, n) => s + file.file.tensors.get(n)!.byteLength, 0))
    }
    assert.is(report.dtype, 'F32', 'the pack\'s dtype by default')
  } finally {
    await file.close()
  }
})

test('adapter folders are packed first and give the same file as their pack; no temporary is left', async () => {
  const fromPack = join(tmp.path, 'p.safetensors')
  const fromFolders = join(tmp.path, 'f.safetensors')
  await compressFile({inputs: [packPath], out: fromPack, selection: {rank: 2}, dtype: 'F16', engine})
  const r = await compressFile({inputs: [adapters], out: fromFolders, selection: {rank: 2}, dtype: 'F16', engine})
  const a = await SharedBFile.open(fromPack)
  const b = await SharedBFile.open(fromFolders)
  try {
    for (const name of a.file.tensors.keys()) assert.equal(Array.from(await a.file.readBytes(name)), Array.from(await b.file.readBytes(name)), name)
    assert.equal(a.errors, b.errors)
  } finally {
    await a.close()
    await b.close()
  }
  assert.is(r.adapters, 5)
  assert.equal(readdirSync(tmp.path).filter((n) => n.startsWith('.')), [], 'no temporary pack left')
})

test('--max-error gives per-module K whose stored errors meet E; unpack loads as a PEFT adapter with those ranks', async () => {
  const out = join(tmp.path, 'maxerr.safetensors')
  const report = await compressFile({inputs: [packPath], out, selection: {maxError: 0.3}, dtype: 'F16', engine})
  for (const m of report.modules) assert.ok(m.error_max <= 0.3)
  const ks = report.modules.map((m) => m.K)
  const dir = join(tmp.path, 'un2')
  const result = await unpackAdapter({file: out, slot: 2, out: dir})
  assert.is(result.exact, false)
  const adapter = await LoraAdapter.load(dir)
  try {
    const file = await SharedBFile.open(out)
    for (const [i, m] of report.modules.entries()) {
      const mod = adapter.module(m.name)
      assert.is(mod.r, ks[i]!)
      assert.is(mod.scaling, 1)
      assert.equal(Array.from((await adapter.readA(m.name)).bytes), Array.from((await file.readA(m.name, 2)).bytes))
      assert.equal(Array.from((await adapter.readB(m.name)).bytes), Array.from((await file.readSharedB(m.name)).bytes))
    }
    await file.close()
  } finally {
    await adapter.close()
  }
})

test('a K at which the shared-B form is larger than the stacks is reported as a warning; one that saves is not', async () => {
  // R = 4, S = 6: q_proj (24×24) stores 6·4·48·4 = 4608 bytes packed, 672·K compressed; down_proj (40→24) 6144 and 1056·K
  const grown = await compressFile({inputs: [packPath], out: join(tmp.path, 'grown.safetensors'), selection: {rank: 8}, engine, allowGrowth: true})
  const bytes = (suffix: string) => {
    const m = grown.modules.find((x) => x.name.endsWith(suffix))!
    return [m.bytes_before, m.bytes_after]
  }
  assert.equal(bytes('q_proj'), [4608, 672 * 8])
  assert.equal(bytes('down_proj'), [6144, 1056 * 8])
  assert.equal(grown.warnings.filter((w) => /larger compressed than packed/.test(w)).length, 1)
  assert.match(grown.warnings.join('\n'), /2 of 2 modules are larger compressed than packed/)
  const saved = await compressFile({inputs: [packPath], out: join(tmp.path, 'saved.safetensors'), selection: {rank: 2}, engine})
  assert.equal(saved.warnings.filter((w) => /larger compressed/.test(w)), [])
})

test('inspect summarizes a shared-B file from its header', async () => {
  const out = join(tmp.path, 'inspect.safetensors')
  const report = await compressFile({inputs: [packPath], out, selection: {savings: 40}, engine})
  const summary = (await inspectPath(out)).pack as {format: string; modules: Array<{name: string; K: number; error_max: number; savings_pct: number}>; compression: {selection: Record<string, number>}}
  assert.is(summary.format, 'lora-pack-shared-b')
  assert.equal(summary.compression.selection, {savings: 40})
  for (const m of report.modules) {
    const s = summary.modules.find((x) => x.name === m.name)!
    assert.is(s.K, m.K)
    assert.ok(Math.abs(s.error_max - m.error_max) < 1e-9)
    assert.ok(s.savings_pct >= 40)
  }
})

test('sweep: rows for K = 1, 2, 4, … with the errors --rank K measures', async () => {
  const sweep = await sweepFile({inputs: [packPath], engine})
  assert.equal(sweep.ranks.slice(0, 3), [1, 2, 4])
  const row = sweep.sweep.find((r) => r.K === 2)!
  const ranked = await compressFile({inputs: [packPath], out: join(tmp.path, 'sweep2.safetensors'), selection: {rank: 2}, engine})
  assert.equal(row.modules, ranked.modules)
  assert.equal(row.totals, ranked.totals)
})

test('bad input: clear errors and no output file', async () => {
  const out = join(tmp.path, 'never.safetensors')
  const text = join(tmp.path, 'notes.txt')
  writeFileSync(text, 'hello')
  const plain = join(tmp.path, 'plain.safetensors')
  await writeSafetensors(plain, [{name: 'w', dtype: 'F32', shape: [2], data: new Float32Array(2)}])
  const empty = join(tmp.path, 'empty')
  mkdirSync(empty)
  const shared = join(tmp.path, 'rank3.safetensors')
  const cases: Array<[Parameters<typeof compressFile>[0], string, RegExp]> = [
    [{inputs: [text], out, selection: {rank: 2}}, 'COMPRESS_BAD_INPUT', /notes\.txt: neither a lora-pack file nor an adapter folder/],
    [{inputs: [plain], out, selection: {rank: 2}}, 'COMPRESS_BAD_INPUT', /format is absent/],
    [{inputs: [shared], out, selection: {rank: 2}}, 'COMPRESS_ALREADY_COMPRESSED', /already a lora-pack-shared-b file/],
    [{inputs: [empty], out, selection: {rank: 2}}, 'PACK_NOT_AN_ADAPTER', /no adapter_config\.json/],
    [{inputs: [packPath], out, selection: {rank: 0}}, 'COMPRESS_BAD_RANK', /positive integer/],
    [{inputs: [packPath], out, selection: {rank: 25}}, 'COMPRESS_RANK_TOO_LARGE', /output dim \(out = 24\)/],
    [{inputs: [packPath], out, selection: {maxError: 1.5}}, 'COMPRESS_BAD_MAX_ERROR', /strictly between 0 and 1/],
    [{inputs: [packPath], out, selection: {maxError: 0}}, 'COMPRESS_BAD_MAX_ERROR', /strictly between 0 and 1/],
    [{inputs: [packPath], out, selection: {maxError: 1e-9}, dtype: 'BF16'}, 'COMPRESS_MAX_ERROR_UNREACHABLE', /cannot be met/],
    [{inputs: [packPath], out: packPath, selection: {rank: 2}}, 'OUTPUT_IS_INPUT', /is the input/],
  ]
  for (const [options, code, message] of cases) {
    const error = await rejection(compressFile({...options, engine}))
    assert.is(error.code, code, `${code}: ${error.message}`)
    assert.match(error.message, message)
    assert.is(error.exitCode, 2)
    assert.not.ok(existsSync(out), `${code} left an output`)
  }
  assert.equal(readdirSync(tmp.path).filter((n) => n.startsWith('.')), [], 'no temporary file left')
})

test('embedding LoRA modules compress under lora_embedding_A / lora_embedding_B_shared and unpack as embedding LoRA', async () => {
  const dir = join(tmp.path, 'emb')
  const modules = [
    {name: 'model.embed_tokens', in: 30, out: 12, r: 3, kind: 'embedding' as const},
    {name: 'model.layers.0.self_attn.q_proj', in: 12, out: 12, r: 3},
  ]
  for (const [i, seed] of [1, 2, 3].entries()) {
    await writeFixtureAdapter(join(dir, `e${i}`), {modules, seed, config: {r: 3, lora_alpha: 6, target_modules: ['embed_tokens', 'q_proj']}})
  }
  const out = join(tmp.path, 'emb.safetensors')
  const report = await compressFile({inputs: [dir], out, selection: {rank: 4}, dtype: 'F32', engine, allowGrowth: true})
  assert.equal(report.modules.map((m) => m.K), [4, 4])
  const file = await SharedBFile.open(out)
  assert.ok(file.file.tensors.has('model.embed_tokens.lora_embedding_A'))
  assert.ok(file.file.tensors.has('model.embed_tokens.lora_embedding_B_shared'))
  await file.close()
  await unpackAdapter({file: out, adapter: 'e1', out: join(tmp.path, 'emb-e1')})
  const adapter = await LoraAdapter.load(join(tmp.path, 'emb-e1'))
  try {
    const m = adapter.module('model.embed_tokens')
    assert.equal([m.kind, m.r, m.in, m.out, m.scaling], ['embedding', 4, 30, 12, 1])
  } finally {
    await adapter.close()
  }
})

const realTest = skipIf(test, realAdaptersMissing())

realTest('real adapters (GPT-2, two alphas): reported errors equal the explicit float64 computation', async () => {
  const out = join(tmp.path, 'real.safetensors')
  const inputs = [join(REAL_ADAPTERS, 'gpt2-r4a1-cattn-cproj'), join(REAL_ADAPTERS, 'gpt2-r4a16-cattn-cproj')]
  const report = await compressFile({inputs, out, selection: {rank: 6}, dtype: 'F32', engine, allowGrowth: true})
  const file = await SharedBFile.open(out)
  try {
    for (const row of report.modules.slice(0, 4)) {
      const m = file.module(row.name)
      const shared = (await file.readSharedB(row.name)).toFloat64()
      for (const [i, dir] of inputs.entries()) {
        const adapter = await LoraAdapter.load(dir)
        const mod = adapter.module(row.name)
        const delta = product((await adapter.readB(row.name)).toFloat64(), mod.out, mod.r, (await adapter.readA(row.name)).toFloat64(), mod.in)
        for (let j = 0; j < delta.length; j++) delta[j]! *= mod.scaling
        await adapter.close()
        const a = (await file.readA(row.name, i + 1)).toFloat64()
        const e = relativeDifference(delta, product(shared, m.out, row.K, a, m.in))
        assert.ok(Math.abs(file.errors[row.name]!.errors[i + 1]! - e) < 1e-9)
      }
      // two rank-4 adapters: K = 6 < Σr = 8 loses something; K = Σr would lose nothing
      assert.ok(row.error_max > 0)
    }
    const full = await compressFile({inputs, out: join(tmp.path, 'real8.safetensors'), selection: {rank: 8}, dtype: 'F32', engine, allowGrowth: true})
    for (const row of full.modules) assert.ok(row.error_max < 1e-5, `${row.name}: ${row.error_max}`)
  } finally {
    await file.close()
  }
})


test.run()
