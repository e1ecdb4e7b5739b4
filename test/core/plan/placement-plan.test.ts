import {suite} from 'uvu'
import * as assert from 'uvu/assert'
import {UsageError} from '../../../src/core/errors.js'
import {classifyModule, inventoryFromConfig} from '../../../src/core/plan/module-inventory.js'
import {planPlacement} from '../../../src/core/plan/placement-plan.js'

const test = suite('placement-plan')

// hidden 8, intermediate 12, 1 layer, vocab 10, 2 heads of 4 with 1 key/value head (GQA)
const config = {hidden_size: 8, intermediate_size: 12, num_hidden_layers: 1, vocab_size: 10, num_attention_heads: 2, num_key_value_heads: 1}
const modules = inventoryFromConfig(config, 'config.json')

test('a Llama config gives embed, q/k/v/o with GQA widths, gate/up/down and lm_head', () => {
  const dims = Object.fromEntries(modules.map((m) => [m.name, [m.in, m.out, m.role]]))
  assert.equal(dims['model.layers.0.self_attn.k_proj'], [8, 4, 'attention'])
  assert.equal(dims['model.layers.0.mlp.down_proj'], [12, 8, 'mlp'])
  assert.equal(dims['model.embed_tokens'], [10, 8, 'embedding'])
  assert.equal(dims.lm_head, [8, 10, 'head'])
  assert.is(inventoryFromConfig({...config, tie_word_embeddings: true}, 'c').some((m) => m.name === 'lm_head'), false)
})

test('hand-worked ladder: parameters and pack bytes per stage (N = 3, r = 2, f16)', () => {
  const plan = planPlacement({modules, adapters: 3, budget: 2272, rank: 2, dtype: 'F16', sharedB: 2})
  // S = 4 slots; a module costs S·r·(in+out)·2 bytes + S·4 bytes of F32 scaling
  // attention: Σ(in+out) = 16+12+12+16 = 56 → 2·56 = 112 params, 4·2·56·2 + 4·16 = 960 bytes
  // + embeddings (10+8 = 18): 148 params, 960 + 4·2·18·2 + 16 = 1264 bytes
  // + MLP (20+20+20 = 60): 268 params, 1264 + 4·2·60·2 + 48 = 2272 bytes
  // all linear (+ lm_head, 18): 304 params, 2272 + 304 = 2576 bytes
  // at 2R: Σ(in+out) = 152 → 608 params, 4·4·152·2 + 9·16 = 5008 bytes
  assert.equal(
    plan.stages.slice(0, 5).map((s) => [s.params_per_adapter, s.bytes, s.modules]),
    [
      [112, 960, 4],
      [148, 1264, 5],
      [268, 2272, 8],
      [304, 2576, 9],
      [608, 5008, 9],
    ],
  )
  assert.is(plan.slots, 4)
  assert.is(plan.furthest_fitting, '+ MLP', 'exactly at the budget fits')
  // shared B at K = 2: (S·K·in + out·K)·2 per module; attention: q 160 + k 144 + v 144 + o 160
  assert.is(plan.stages[0]!.shared_b_bytes, 608)
})

test('budget boundaries', () => {
  const at = (budget: number) => planPlacement({modules, adapters: 3, budget, rank: 2, dtype: 'F16'}).furthest_fitting
  assert.is(at(2271), '+ embeddings')
  assert.is(at(959), null)
  assert.is(at(960), 'attention (q,k,v,o)')
  assert.is(at(10 ** 12), 'all linear at 8R (r=16)')
})

test('module roles follow the naming of common architectures', () => {
  assert.is(classifyModule('transformer.h.0.attn.c_attn'), 'attention')
  assert.is(classifyModule('transformer.h.0.attn.c_proj'), 'attention')
  assert.is(classifyModule('transformer.h.0.mlp.c_proj'), 'mlp')
  assert.is(classifyModule('bert.encoder.layer.0.attention.output.dense'), 'attention')
  assert.is(classifyModule('bert.encoder.layer.0.intermediate.dense'), 'mlp')
  assert.is(classifyModule('transformer.wte'), 'embedding')
  assert.is(classifyModule('lm_head'), 'head')
  assert.is(classifyModule('transformer.wpe'), 'other')
})

test('refuses impossible requests', () => {
  assert.throws(() => planPlacement({modules, adapters: 0, budget: 1, rank: 2, dtype: 'F16'}), (e: Error) => e instanceof UsageError && /--adapters must be a positive integer/.test(e.message))
  assert.throws(() => planPlacement({modules: modules.filter((m) => m.role !== 'attention'), adapters: 1, budget: 1, rank: 2, dtype: 'F16'}), /no recognisable attention/)
})

test.run()
