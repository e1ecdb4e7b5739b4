import {suite} from 'uvu'
import * as assert from 'uvu/assert'
import type {DType} from '../../../src/core/dtype.js'
import type {LoraModule} from '../../../src/core/formats/peft-adapter.js'
import {parseLoraConfig} from '../../../src/core/formats/peft-config.js'
import {AdapterHeader, naturalCompare, planPack} from '../../../src/core/pack/pack-plan.js'

const test = suite('pack-plan')

function header(name: string, modules: Array<Partial<LoraModule> & {name: string}>, config: Record<string, unknown> = {}): AdapterHeader {
  return {
    name,
    dir: `/adapters/${name}`,
    config: parseLoraConfig({peft_type: 'LORA', r: 4, lora_alpha: 8, base_model_name_or_path: 'base', ...config}, `${name}/adapter_config.json`),
    modules: modules.map((m) => ({kind: 'linear', in: 8, out: 8, r: 4, alpha: 8, scaling: 2, aKey: `base_model.model.${m.name}.lora_A.weight`, bKey: `base_model.model.${m.name}.lora_B.weight`, dtype: 'F32' as DType, ...m})),
    extraTensors: [],
    metadata: {},
  }
}

test('natural order: digit runs compare as numbers', () => {
  const names = ['m.layers.10.q', 'm.layers.2.q', 'm.embed', 'm.layers.2.k', 'm.layers.1.q']
  assert.equal([...names].sort(naturalCompare), ['m.embed', 'm.layers.1.q', 'm.layers.2.k', 'm.layers.2.q', 'm.layers.10.q'])
})

test('the plan: modules in natural order, R the largest rank, tensor specs per module, padding bytes', () => {
  const plan = planPack([header('a', [{name: 'm.10.q', r: 2}, {name: 'm.2.q', r: 4}]), header('b', [{name: 'm.2.q', r: 8}])])
  assert.equal(plan.manifest.modules.map((m) => [m.name, m.R]), [['m.2.q', 8], ['m.10.q', 2]])
  assert.equal(plan.specs.map((s) => [s.name, s.dtype, s.shape]), [
    ['m.2.q.lora_A', 'F32', [3, 8, 8]],
    ['m.2.q.lora_B', 'F32', [3, 8, 8]],
    ['m.2.q.lora_scaling', 'F32', [3]],
    ['m.10.q.lora_A', 'F32', [3, 2, 8]],
    ['m.10.q.lora_B', 'F32', [3, 8, 2]],
    ['m.10.q.lora_scaling', 'F32', [3]],
  ])
  // m.2.q: 3·8 rows of which 4 + 8 hold values; m.10.q: 3·2 of which 2; each row is (8 + 8)·4 bytes
  assert.is(plan.paddingBytes, ((24 - 12) + (6 - 2)) * 16 * 4)
  assert.equal(plan.manifest.adapters.map((a) => a.sha256), ['0'.repeat(64), '0'.repeat(64)])
})

test('a module that is linear in one adapter and an embedding in another is refused, naming both', () => {
  assert.throws(
    () => planPack([header('a', [{name: 'm.e'}]), header('b', [{name: 'm.e', kind: 'embedding'}])]),
    (e: Error & {code?: string}) => e.code === 'PACK_DIMS_MISMATCH' && /module "m\.e" is linear \[out 8, in 8\] in adapter "a" \(\/adapters\/a\) but embedding \[out 8, in 8\] in adapter "b" \(\/adapters\/b\)/.test(e.message),
  )
})

test('integer LoRA tensors are refused', () => {
  assert.throws(() => planPack([header('a', [{name: 'm.q', dtype: 'I8'}])]), (e: Error & {code?: string}) => e.code === 'PACK_NOT_FLOAT' && /adapter "a" stores module "m\.q" as I8/.test(e.message))
})

test('an explicit dtype is used without a warning; a null base differs from a named one', () => {
  const plan = planPack([header('a', [{name: 'm.q'}])], {dtype: 'BF16'})
  assert.is(plan.manifest.dtype, 'BF16')
  assert.equal(plan.warnings, [])
  assert.throws(() => planPack([header('a', [{name: 'm.q'}]), header('b', [{name: 'm.q'}], {base_model_name_or_path: null})]), /"base" \(adapter "a"\) vs \(none\) \(adapter "b"\)/)
})

test.run()
