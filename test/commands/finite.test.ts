/**
 * Issue 15, whys 2 and 3: NaN, ±Infinity and overflowing scales are refused
 * (exit 2) or fail the gate (exit 1), never written with exit 0; adapters
 * without LoRA tensors are refused.
 */
import {cpSync, existsSync, readFileSync, readdirSync, writeFileSync} from 'node:fs'
import {join} from 'node:path'
import {suite} from 'uvu'
import * as assert from 'uvu/assert'
import {numberToF16Bits} from '../../src/core/dtype.js'
import {evaluateGate} from '../../src/core/merge/merge-model.js'
import type {QualityReport} from '../../src/core/merge/quality.js'
import {Fixtures, alterSt, readSt, writeSt} from '../core/errors/fixtures.js'
import {runCli, tempDir} from '../helpers/index.js'

const test = suite('commands: finite numbers and non-empty adapters')
const tmp = tempDir('lora-finite-')
const fx = new Fixtures(join(tmp.path, 'fixtures'))
test.after(async () => {
  await fx.close()
  tmp.cleanup()
})

let n = 0
const fresh = () => join(tmp.path, `case${n++}`)

/** A copy of the fixture adapter with `edit` applied to its file and `patch` to its config. */
async function adapter(edit?: Parameters<typeof alterSt>[2], patch: Record<string, unknown> = {}): Promise<string> {
  const dir = fresh()
  cpSync(await fx.adapter(), dir, {recursive: true})
  if (edit) alterSt(join(await fx.adapter(), 'adapter_model.safetensors'), join(dir, 'adapter_model.safetensors'), edit)
  const config = JSON.parse(readFileSync(join(dir, 'adapter_config.json'), 'utf8'))
  writeFileSync(join(dir, 'adapter_config.json'), JSON.stringify({...config, ...patch}))
  return dir
}

/** Set element `index` of the first tensor whose name ends with `suffix` (F16 or F32) to `value`. */
const poke = (suffix: string, index: number, value: number): Parameters<typeof alterSt>[2] => (f) => {
  const t = f.tensors.find((x) => x.name.endsWith(suffix))!
  t.data = Uint8Array.from(t.data!)
  const view = new DataView(t.data.buffer)
  if (t.dtype === 'F32') view.setFloat32(index * 4, value, true)
  else view.setUint16(index * 2, numberToF16Bits(value), true)
}

async function refused(args: string[], code: string, message?: RegExp): Promise<void> {
  const plain = await runCli(args)
  assert.is(plain.status, 2, plain.stderr)
  assert.match(plain.stderr, /^Error: [^\n]+\n$/)
  if (message) assert.match(plain.stderr, message)
  const json = await runCli([...args, '--json'])
  assert.is(JSON.parse(json.stdout).error.code, code, json.stdout)
}

test('merge of an adapter holding one NaN: exit 2 naming the file, the tensor and the element; nothing written', async () => {
  const bad = await adapter(poke('q_proj.lora_B.weight', 3, Number.NaN))
  const out = join(fresh(), 'merged')
  await refused(['merge', '--base', await fx.base(), '--adapter', bad, '--out', out], 'TENSOR_NOT_FINITE', /adapter_model\.safetensors: tensor "base_model\.model\.model\.layers\.0\.self_attn\.q_proj\.lora_B\.weight" holds NaN at element 3/)
  assert.not.ok(existsSync(out))
  assert.equal(readdirSync(join(out, '..')).filter((e) => e.startsWith('.')), [])
})

test('lora_alpha 1e308 and --weight 1e308: refused before any work', async () => {
  const huge = await adapter(undefined, {lora_alpha: 1e308})
  await refused(['merge', '--base', await fx.base(), '--adapter', huge, '--out', join(fresh(), 'm')], 'ADAPTER_BAD_SCALING', /lora_alpha 1e\+308 gives scaling 5e\+307, past float32's range/)
  await refused(['merge', '--base', await fx.base(), '--adapter', await fx.adapter(), '--weight', '1e308', '--out', join(fresh(), 'm')], 'BAD_FLAG', /--weight must be a number ≥ -1000 and ≤ 1000/)
  await refused(['pack', huge, '--out', join(fresh(), 'p.safetensors')], 'ADAPTER_BAD_SCALING')
})

test('pack of an adapter holding +Infinity: exit 2, no pack', async () => {
  const bad = await adapter(poke('v_proj.lora_A.weight', 0, Number.POSITIVE_INFINITY))
  const out = join(fresh(), 'p.safetensors')
  await refused(['pack', bad, '--out', out], 'TENSOR_NOT_FINITE', /holds \+Infinity at element 0/)
  assert.not.ok(existsSync(out))
})

test('NaN in a pack\'s null slot: inspect, unpack and compress refuse it', async () => {
  const dir = fresh()
  const {mkdirSync} = await import('node:fs')
  mkdirSync(dir)
  const pack = alterSt(await fx.pack(), join(dir, 'p.safetensors'), poke('lora_B', 0, Number.NaN))
  await refused(['inspect', pack], 'TENSOR_NOT_FINITE', /holds NaN at element 0/)
  await refused(['unpack', pack, '--slot', '1', '--out', join(dir, 'u')], 'TENSOR_NOT_FINITE')
  await refused(['compress', pack, '--rank', '1', '--out', join(dir, 'c.safetensors')], 'TENSOR_NOT_FINITE')
  const nonzero = alterSt(await fx.pack(), join(dir, 'z.safetensors'), poke('lora_A', 1, 0.25))
  await refused(['unpack', nonzero, '--slot', '2', '--out', join(dir, 'u')], 'PACK_NULL_SLOT_NOT_ZERO')
  assert.equal(readdirSync(dir).sort(), ['p.safetensors', 'z.safetensors'])
})

test('NaN in an adapter\'s slot of a pack: unpacking that adapter refuses it', async () => {
  const dir = fresh()
  const {mkdirSync} = await import('node:fs')
  mkdirSync(dir)
  const {tensors} = readSt(await fx.pack())
  const a = tensors.find((t) => t.name.endsWith('lora_A'))!
  // slot 1 starts one slot (R · in elements) in
  const slotElements = a.shape[1]! * a.shape[2]!
  const pack = alterSt(await fx.pack(), join(dir, 'p.safetensors'), poke('lora_A', slotElements + 2, Number.NaN))
  await refused(['unpack', pack, '--slot', '1', '--out', join(dir, 'u')], 'TENSOR_NOT_FINITE', new RegExp(`at element ${slotElements + 2} \\(row 1, offset 2 in the row\\)`))
})

test('an adapter with zero LoRA tensors (a base model\'s file under an adapter\'s name): pack and merge exit 2', async () => {
  const dir = fresh()
  cpSync(await fx.adapter(), dir, {recursive: true})
  const base = await fx.base()
  writeSt(join(dir, 'adapter_model.safetensors'), readSt(join(base, 'model.safetensors')).tensors.slice(0, 3))
  await refused(['pack', dir, '--out', join(fresh(), 'p.safetensors')], 'ADAPTER_EMPTY', /holds no LoRA tensors .* a base model's file under an adapter's name\?/)
  await refused(['merge', '--base', base, '--adapter', dir, '--out', join(fresh(), 'm')], 'ADAPTER_EMPTY')
})

test('--max-loss: a NaN figure fails the gate; a null one (no adapter effect) does not', () => {
  const report = (retained: number | null): QualityReport => ({scheme: null, written: 'merged', probes: {rows: 1, source: 'x'}, tensors: [{name: 't', quantized: false, merged: {weight_rel_error: 0, delta_snr: null, adapter_retained: retained}}], totals: {}})
  assert.is(evaluateGate(report(Number.NaN), 0.2).passed, false)
  assert.is(evaluateGate(report(Number.POSITIVE_INFINITY), 0.2).passed, false)
  assert.is(evaluateGate(report(0.5), 0.2).passed, false)
  assert.is(evaluateGate(report(0.9), 0.2).passed, true)
  assert.is(evaluateGate(report(null), 0.2).passed, true)
})

test.run()
