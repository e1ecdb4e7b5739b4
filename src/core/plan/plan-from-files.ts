/** `lora plan`'s entry point: the module inventory from a model or a config file, then the ladder. */
import {InputError} from '../errors.js'
import {readRegularText} from '../io/regular-file.js'
import type {FloatOutputDType} from '../dtype.js'
import {openModel} from '../formats/sharded-model.js'
import {PlannableModule, inventoryFromConfig, inventoryFromModel} from './module-inventory.js'
import {PlanResult, planPlacement} from './placement-plan.js'

/** A config.json larger than this is not a model config. */
const MAX_PLAN_CONFIG_BYTES = 16 * 1024 * 1024

export interface PlanFromFilesOptions {
  /** A model file, index or folder (headers are read). */
  base?: string
  /** A Hugging Face config.json of the Llama family. */
  config?: string
  adapters: number
  budget: number
  rank: number
  dtype: FloatOutputDType
  sharedB?: number
}

export interface PlanReport extends PlanResult {
  source: string
}

/** Load the inventory and compute the placement ladder. */
export async function planFromFiles(options: PlanFromFilesOptions): Promise<PlanReport> {
  let modules: PlannableModule[]
  let source: string
  if (options.base !== undefined) {
    const model = await openModel(options.base)
    try {
      modules = inventoryFromModel(model)
    } finally {
      await model.close()
    }
    source = options.base
  } else if (options.config !== undefined) {
    const path = options.config
    const text = await readRegularText(path, MAX_PLAN_CONFIG_BYTES, (size) => new InputError('PLAN_BAD_CONFIG', `read ${path}: ${size} bytes is too large for a config.json`))
    let json: unknown
    try {
      json = JSON.parse(text)
    } catch (error) {
      throw new InputError('PLAN_BAD_CONFIG', `read ${path}: not valid JSON (${(error as Error).message})`)
    }
    if (typeof json !== 'object' || json === null || Array.isArray(json)) throw new InputError('PLAN_BAD_CONFIG', `read ${path}: not a JSON object`)
    modules = inventoryFromConfig(json as Record<string, unknown>, path)
    source = path
  } else {
    throw new InputError('PLAN_NO_MODEL', 'plan needs --base MODEL or --config config.json')
  }
  return {source, ...planPlacement({modules, adapters: options.adapters, budget: options.budget, rank: options.rank, dtype: options.dtype, sharedB: options.sharedB})}
}
