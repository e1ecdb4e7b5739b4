import {suite} from 'uvu'
import * as assert from 'uvu/assert'
import {InputError} from '../../../src/core/errors.js'
import {isTargeted, matchPatternKey, moduleRankAndScaling, parseLoraConfig} from '../../../src/core/formats/peft-config.js'

const test = suite('peft-config')

const config = (fields: Record<string, unknown>) => parseLoraConfig({peft_type: 'LORA', r: 8, lora_alpha: 16, ...fields}, 'adapter_config.json')

test('scaling is alpha/r, or alpha/sqrt(r) with rslora', () => {
  assert.is(moduleRankAndScaling(config({}), 'model.layers.0.self_attn.q_proj').scaling, 2)
  assert.is(moduleRankAndScaling(config({use_rslora: true, r: 16, lora_alpha: 8}), 'x.q_proj').scaling, 2)
})

test('rank_pattern and alpha_pattern match as PEFT get_pattern_key does', () => {
  const c = config({rank_pattern: {q_proj: 4, 'layers\\.1\\.self_attn\\.v_proj': 32}, alpha_pattern: {'^model.layers.0.self_attn.q_proj': 2}})
  // suffix after a dot
  assert.equal(moduleRankAndScaling(c, 'model.layers.3.self_attn.q_proj'), {r: 4, alpha: 16, scaling: 4})
  // a key may span several segments (regex)
  assert.equal(moduleRankAndScaling(c, 'model.layers.1.self_attn.v_proj'), {r: 32, alpha: 16, scaling: 0.5})
  assert.equal(moduleRankAndScaling(c, 'model.layers.2.self_attn.v_proj'), {r: 8, alpha: 16, scaling: 2})
  // the key must end at the end of the name and start at a segment boundary
  assert.is(matchPatternKey(['q_proj'], 'model.layers.0.self_attn.xq_proj'), undefined)
  assert.is(matchPatternKey(['q_proj'], 'model.q_proj.lora'), undefined)
  // the first matching key wins
  assert.is(matchPatternKey(['proj', 'q_proj'], 'a.q_proj'), 'q_proj')
  assert.is(matchPatternKey(['.*proj', 'q_proj'], 'a.q_proj'), '.*proj')
})

test('target_modules: list entries match by suffix, a string as a full regex', () => {
  const list = config({target_modules: ['q_proj', 'attention.v_lin']})
  assert.ok(isTargeted(list, 'model.layers.0.self_attn.q_proj'))
  assert.ok(isTargeted(list, 'distilbert.transformer.layer.0.attention.v_lin'))
  assert.not.ok(isTargeted(list, 'model.layers.0.self_attn.k_proj'))
  const regex = config({target_modules: '.*\\.(q|v)_proj'})
  assert.ok(isTargeted(regex, 'model.layers.0.self_attn.v_proj'))
  assert.not.ok(isTargeted(regex, 'model.layers.0.self_attn.o_proj'))
  assert.not.ok(isTargeted(config({target_modules: 'classifier'}), 'pre_classifier'), 'a string target must match the whole name')
})

const invalid: Array<[string, Record<string, unknown>, RegExp]> = [
  ['r = 0', {r: 0}, /r must be a positive integer \(got 0\)/],
  ['fractional r', {r: 2.5}, /r must be a positive integer/],
  ['alpha as a string', {lora_alpha: '16'}, /lora_alpha must be a number/],
  ['rank_pattern value 0', {rank_pattern: {q: 0}}, /rank_pattern\["q"\] must be a positive integer/],
  ['an invalid regex key', {rank_pattern: {'(': 4}}, /pattern "\(" is not a valid regular expression/],
  ['use_rslora as a string', {use_rslora: 'yes'}, /use_rslora must be true or false/],
  ['target_modules as a number', {target_modules: 3}, /target_modules must be a list, a string or null/],
]
for (const [name, fields, message] of invalid) {
  test(`refuses ${name}`, () => {
    try {
      config(fields)
      assert.unreachable()
    } catch (error) {
      assert.instance(error, InputError)
      assert.match((error as Error).message, /^read adapter_config\.json: /)
      assert.match((error as Error).message, message)
    }
  })
}

test('refuses adapters that are not LoRA', () => {
  try {
    parseLoraConfig({peft_type: 'IA3', r: 8}, 'c.json')
    assert.unreachable()
  } catch (error) {
    assert.is((error as InputError).code, 'PEFT_NOT_LORA')
  }
})

test.run()
