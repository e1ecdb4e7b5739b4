/**
 * PEFT `adapter_config.json` for LoRA: the fields that decide shapes and
 * scaling, validated, with the original object kept for faithful rewrites.
 *
 * Matching rules follow PEFT:
 * - `target_modules` as a list matches a module named exactly so or ending in
 *   `.<target>`; as a string it is a regular expression that must match the
 *   whole module name.
 * - `rank_pattern` / `alpha_pattern` keys are regular expressions; the first key
 *   for which `(.*\.)?(<key>)$` matches the module name from its start wins
 *   (PEFT's `get_pattern_key`).
 * - scaling is `alpha / r`, or `alpha / sqrt(r)` with `use_rslora`.
 */
import {InputError} from '../errors.js'

export interface LoraConfig {
  readonly r: number
  readonly loraAlpha: number
  readonly useRslora: boolean
  readonly rankPattern: Readonly<Record<string, number>>
  readonly alphaPattern: Readonly<Record<string, number>>
  /** A list of name suffixes, a full-match regex string, or null. */
  readonly targetModules: readonly string[] | string | null
  readonly fanInFanOut: boolean
  readonly modulesToSave: readonly string[] | null
  readonly useDora: boolean
  readonly baseModelNameOrPath: string | null
  readonly peftType: string
  /** The parsed JSON object as found (null prototype). */
  readonly raw: Readonly<Record<string, unknown>>
  /** The file's text as found, for byte-identical rewrites (absent when the config did not come from a file). */
  readonly text?: string
}

/**
 * Validate a parsed `adapter_config.json`.
 * @param file the config path, for messages
 * @throws InputError for a non-LoRA config or fields of the wrong type
 */
export function parseLoraConfig(json: unknown, file: string): LoraConfig {
  const fail = (problem: string): never => {
    throw new InputError('PEFT_CONFIG_INVALID', `read ${file}: ${problem}`)
  }
  if (typeof json !== 'object' || json === null || Array.isArray(json)) return fail('not a JSON object')
  const raw = json as Record<string, unknown>
  const peftType = raw.peft_type ?? 'LORA'
  if (typeof peftType !== 'string') return fail('peft_type is not a string')
  if (peftType.toUpperCase() !== 'LORA') {
    throw new InputError('PEFT_NOT_LORA', `read ${file}: peft_type is "${peftType}", only LoRA adapters are supported`)
  }
  const r = raw.r
  if (typeof r !== 'number' || !Number.isInteger(r) || r <= 0) return fail(`r must be a positive integer (got ${JSON.stringify(r)})`)
  const loraAlpha = raw.lora_alpha ?? 8
  if (typeof loraAlpha !== 'number' || !Number.isFinite(loraAlpha)) return fail(`lora_alpha must be a number (got ${JSON.stringify(raw.lora_alpha)})`)
  const bool = (key: string, fallback: boolean): boolean => {
    const v = raw[key]
    if (v === undefined || v === null) return fallback
    if (typeof v !== 'boolean') return fail(`${key} must be true or false (got ${JSON.stringify(v)})`)
    return v
  }
  const pattern = (key: string, integer: boolean): Record<string, number> => {
    const v = raw[key]
    if (v === undefined || v === null) return {}
    if (typeof v !== 'object' || Array.isArray(v)) return fail(`${key} must be an object`)
    const out: Record<string, number> = Object.create(null)
    for (const [k, n] of Object.entries(v as Record<string, unknown>)) {
      if (typeof n !== 'number' || !Number.isFinite(n) || (integer && (!Number.isInteger(n) || n <= 0))) {
        return fail(`${key}["${k}"] must be a ${integer ? 'positive integer' : 'number'} (got ${JSON.stringify(n)})`)
      }
      compilePattern(k, file)
      out[k] = n
    }
    return out
  }
  const targets = raw.target_modules
  let targetModules: readonly string[] | string | null = null
  if (typeof targets === 'string') targetModules = targets
  else if (Array.isArray(targets)) {
    if (!targets.every((t) => typeof t === 'string')) return fail('target_modules must hold strings')
    targetModules = targets as string[]
  } else if (targets !== undefined && targets !== null) return fail('target_modules must be a list, a string or null')
  const mts = raw.modules_to_save
  let modulesToSave: readonly string[] | null = null
  if (Array.isArray(mts)) {
    if (!mts.every((t) => typeof t === 'string')) return fail('modules_to_save must hold strings')
    modulesToSave = mts as string[]
  } else if (mts !== undefined && mts !== null) return fail('modules_to_save must be a list or null')
  const base = raw.base_model_name_or_path
  if (base !== undefined && base !== null && typeof base !== 'string') return fail('base_model_name_or_path must be a string or null')
  return {
    r,
    loraAlpha,
    useRslora: bool('use_rslora', false),
    rankPattern: pattern('rank_pattern', true),
    alphaPattern: pattern('alpha_pattern', false),
    targetModules,
    fanInFanOut: bool('fan_in_fan_out', false),
    modulesToSave,
    useDora: bool('use_dora', false),
    baseModelNameOrPath: (base as string | null | undefined) ?? null,
    peftType: peftType.toUpperCase(),
    raw,
  }
}

const compiled = new Map<string, RegExp>()

function compilePattern(key: string, file: string): RegExp {
  let re = compiled.get(key)
  if (!re) {
    try {
      re = new RegExp(`^(.*\\.)?(${key})$`, 'u')
    } catch {
      throw new InputError('PEFT_CONFIG_INVALID', `read ${file}: pattern "${key}" is not a valid regular expression`)
    }
    compiled.set(key, re)
  }
  return re
}

/** PEFT's `get_pattern_key`: the first pattern key matching `moduleName`, or undefined. */
export function matchPatternKey(patternKeys: readonly string[], moduleName: string): string | undefined {
  for (const key of patternKeys) {
    if (compilePattern(key, '<pattern>').test(moduleName)) return key
  }
  return undefined
}

/** The rank, alpha and scaling PEFT gives `moduleName` under `config`. */
export function moduleRankAndScaling(config: LoraConfig, moduleName: string): {r: number; alpha: number; scaling: number} {
  const rKey = matchPatternKey(Object.keys(config.rankPattern), moduleName)
  const aKey = matchPatternKey(Object.keys(config.alphaPattern), moduleName)
  const r = rKey === undefined ? config.r : config.rankPattern[rKey]!
  const alpha = aKey === undefined ? config.loraAlpha : config.alphaPattern[aKey]!
  return {r, alpha, scaling: config.useRslora ? alpha / Math.sqrt(r) : alpha / r}
}

/** Whether PEFT's `target_modules` selects `moduleName`. */
export function isTargeted(config: LoraConfig, moduleName: string): boolean {
  const t = config.targetModules
  if (t === null) return false
  if (typeof t === 'string') {
    if (t === 'all-linear') return true
    try {
      return new RegExp(`^(?:${t})$`, 'u').test(moduleName)
    } catch {
      return false
    }
  }
  return t.some((target) => moduleName === target || moduleName.endsWith(`.${target}`))
}
