/**
 * `lora plan`'s bytes are the bytes `lora pack` and `lora compress` write:
 * for every stage of the ladder, adapters placed exactly at that stage are
 * packed (and compressed) and the stacked tensors in the output are summed.
 */
import {join} from 'node:path'
import {suite} from 'uvu'
import * as assert from 'uvu/assert'
import {openModel} from '../../../src/core/formats/sharded-model.js'
import {SafetensorsFile} from '../../../src/core/formats/safetensors-file.js'
import {compressFile} from '../../../src/core/compress/compress-file.js'
import {packAdapters} from '../../../src/core/pack/pack-adapters.js'
import {PlannableModule, inventoryFromModel} from '../../../src/core/plan/module-inventory.js'
import {planPlacement} from '../../../src/core/plan/placement-plan.js'
import {synthesizeBase} from '../../../src/core/synth/base.js'
import {tempDir} from '../../helpers/index.js'
import {writeFixtureAdapter} from '../../helpers/pack-fixtures.js'

const test = suite('plan-vs-pack')

const ADAPTERS = 3
const RANK = 2
const SHARED_K = 2

/** Sum of every tensor's bytes in a safetensors file (the header excluded). */
async function tensorBytes(path: string): Promise<number> {
  const file = await SafetensorsFile.open(path)
  try {
    let total = 0
    for (const info of file.tensors.values()) total += info.byteLength
    return total
  } finally {
    await file.close()
  }
}

test('every stage of the ladder costs what lora pack and lora compress write', async () => {
  const dir = tempDir('lora-plan-pack-')
  try {
    const base = join(dir.path, 'base')
    await synthesizeBase({out: base, hidden: 16, intermediate: 24, layers: 1, vocab: 20, dtype: 'F16', seed: 1})
    const model = await openModel(base)
    let modules: PlannableModule[]
    try {
      modules = inventoryFromModel(model)
    } finally {
      await model.close()
    }
    assert.ok(modules.some((m) => m.role === 'embedding'), 'the synthetic base has an embedding to adapt')
    assert.ok(modules.some((m) => m.role === 'head'), 'the synthetic base has an lm_head')

    const plan = planPlacement({modules, adapters: ADAPTERS, budget: Number.MAX_SAFE_INTEGER, rank: RANK, dtype: 'F16', sharedB: SHARED_K, maxRankMultiple: 2})
    assert.is(plan.stages.length, 5)
    for (const [index, stage] of plan.stages.entries()) {
      const chosen = modules.filter((m) => stage.roles.includes(m.role))
      const inputs: string[] = []
      for (let a = 0; a < ADAPTERS; a++) {
        const folder = join(dir.path, `stage-${index}`, `adapter-${a}`)
        await writeFixtureAdapter(folder, {
          modules: chosen.map((m) => ({name: m.name, in: m.in, out: m.out, r: stage.rank, kind: m.kind})),
          config: {r: stage.rank, lora_alpha: 2 * stage.rank, target_modules: chosen.map((m) => m.name.split('.').pop()!)},
          dtype: 'F16',
          seed: 100 * index + a,
        })
        inputs.push(folder)
      }
      const packPath = join(dir.path, `stage-${index}.safetensors`)
      await packAdapters({inputs, out: packPath})
      assert.is(await tensorBytes(packPath), stage.bytes, `${stage.stage}: plan bytes = packed tensor bytes`)

      const sharedPath = join(dir.path, `stage-${index}-shared.safetensors`)
      await compressFile({inputs: [packPath], out: sharedPath, selection: {rank: SHARED_K}})
      assert.is(await tensorBytes(sharedPath), stage.shared_b_bytes, `${stage.stage}: plan shared-B bytes = compressed tensor bytes`)
    }
  } finally {
    dir.cleanup()
  }
})

test.run()
