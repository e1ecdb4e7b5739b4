/**
 * The manifest of a `lora-pack` file: a JSON string in the safetensors
 * `__metadata__` under `"manifest"` that says which adapter sits in which
 * slot, with everything needed to cut a padded slot back to the adapter's
 * own tensors and config (docs/formats.md, "lora-pack").
 *
 * The manifest comes from a file, so `parseManifest` treats it as hostile:
 * every field is type-checked, names are unique, slots are 1..N in order,
 * and every per-module rank fits the module's R.
 */
import {DTYPES, DType, isDType} from '../dtype.js'
import {InputError} from '../errors.js'
import type {LoraKind} from './peft-adapter.js'
import {sanitizeName} from './safetensors-header.js'
import {JsonSyntaxError, JsonValue, parseStrictJson, toPlainJson} from './strict-json.js'

/** `__metadata__.format` of a pack. */
export const PACK_FORMAT = 'lora-pack'
/** `__metadata__.format_version` this code writes and reads. */
export const PACK_FORMAT_VERSION = '1'

/** One stacked base module: `P.lora_A` [S, R, in], `P.lora_B` [S, out, R], `P.lora_scaling` [S]. */
export interface PackModuleEntry {
  /** Module path without PEFT's `base_model.model.` prefix, e.g. `model.layers.0.self_attn.q_proj`. */
  readonly name: string
  readonly kind: LoraKind
  /** Input features (linear) or number of embeddings (embedding). */
  readonly in: number
  /** Output features (linear) or embedding dimension. */
  readonly out: number
  /** The largest rank any adapter uses on this module. */
  readonly R: number
  /** Whether any adapter targeting the module says `fan_in_fan_out` (a GPT-2 Conv1D base weight stored [in, out]). */
  readonly fan_in_fan_out: boolean
}

/** What one adapter has on one module. */
export interface PackAdapterModule {
  readonly name: string
  /** The adapter's own rank here (rows 0..r-1 of its A slot, columns 0..r-1 of its B slot). */
  readonly r: number
  readonly alpha: number
  /** alpha / r, or alpha / sqrt(r) with rslora, after rank_pattern / alpha_pattern. */
  readonly scaling: number
  /** The source tensors' dtype, when it differs from the adapter's `dtype`. */
  readonly dtype?: DType
  /** The source tensor names, when they do not follow the adapter's `key_prefix` / `key_infix`. */
  readonly a_key?: string
  readonly b_key?: string
}

/** One packed adapter (slot `slot`). */
export interface PackAdapterEntry {
  readonly name: string
  /** 1..N (slot 0 is the null adapter). */
  readonly slot: number
  /** The adapter folder it was packed from (absolute). */
  readonly source: string
  /** sha256 of the source `adapter_model.safetensors`, lowercase hex. */
  readonly sha256: string
  readonly r: number
  readonly lora_alpha: number
  readonly use_rslora: boolean
  readonly rank_pattern: Readonly<Record<string, number>>
  readonly alpha_pattern: Readonly<Record<string, number>>
  readonly fan_in_fan_out: boolean
  readonly base_model_name_or_path: string | null
  readonly target_modules: readonly string[] | string | null
  /** The config's `modules_to_save` (not stacked: full weights cannot be routed per request). */
  readonly modules_to_save: readonly string[]
  /** Tensors of the source file that are not LoRA pairs and were not packed. */
  readonly extra_tensors: readonly string[]
  /** The source LoRA tensors' dtype. */
  readonly dtype: DType
  /** Source tensor names are `<key_prefix><module>.lora_A[.<key_infix>].weight` (embedding: `.lora_embedding_A[.<infix>]`). */
  readonly key_prefix: string
  readonly key_infix: string | null
  /** The modules it adapts, in the source file's order. */
  readonly modules: readonly PackAdapterModule[]
  /** The source file's `__metadata__`. */
  readonly safetensors_metadata: Readonly<Record<string, string>>
  /** `adapter_config.json` as found. */
  readonly config: Readonly<Record<string, unknown>>
  /** Its text as found (unpack writes these bytes back); absent in packs written before it was kept. */
  readonly config_text?: string
}

export interface PackManifest {
  readonly tool: string
  readonly tool_version: string
  /** dtype of every `lora_A` / `lora_B` stack (scaling is always F32). */
  readonly dtype: DType
  /** S = N + 1. */
  readonly slots: number
  /** The adapters' common base model, or null when they differ or none is named. */
  readonly base_model_name_or_path: string | null
  readonly modules: readonly PackModuleEntry[]
  readonly adapters: readonly PackAdapterEntry[]
}

/** The manifest as the JSON string stored in `__metadata__.manifest`. */
export function serializeManifest(manifest: PackManifest): string {
  return JSON.stringify(manifest)
}

/** Source tensor names of `module` in `adapter`: `[A key, B key]`. */
export function sourceKeys(adapter: PackAdapterEntry, module: PackAdapterModule, kind: LoraKind): [string, string] {
  if (module.a_key !== undefined && module.b_key !== undefined) return [module.a_key, module.b_key]
  return standardKeys(adapter.key_prefix, adapter.key_infix, module.name, kind)
}

/** `<prefix><module>.lora_A[.<infix>].weight` and B (embedding: `.lora_embedding_A[.<infix>]`). */
export function standardKeys(prefix: string, infix: string | null, module: string, kind: LoraKind): [string, string] {
  const tail = infix === null ? '' : `.${infix}`
  if (kind === 'embedding') return [`${prefix}${module}.lora_embedding_A${tail}`, `${prefix}${module}.lora_embedding_B${tail}`]
  return [`${prefix}${module}.lora_A${tail}.weight`, `${prefix}${module}.lora_B${tail}.weight`]
}

/**
 * The adapter in `slot` (1..N) of a manifest read from `path`.
 * @throws InputError PACK_NO_SUCH_SLOT for slot 0 or a slot out of range
 */
export function adapterInSlot(manifest: PackManifest, path: string, slot: number): PackAdapterEntry {
  const a = Number.isSafeInteger(slot) && slot >= 1 ? manifest.adapters[slot - 1] : undefined
  if (!a) {
    throw new InputError('PACK_NO_SUCH_SLOT', `read ${path}: slot ${slot} holds no adapter (adapters are in slots 1..${manifest.slots - 1}; slot 0 is the null adapter)`)
  }
  return a
}

/**
 * The adapter named `name` in a manifest read from `path`.
 * @throws InputError PACK_NO_SUCH_ADAPTER naming a few that exist
 */
export function adapterNamed(manifest: PackManifest, path: string, name: string): PackAdapterEntry {
  const a = manifest.adapters.find((x) => x.name === name)
  if (!a) {
    const some = manifest.adapters.slice(0, 5).map((x) => `"${sanitizeName(x.name, 40)}"`).join(', ')
    throw new InputError('PACK_NO_SUCH_ADAPTER', `read ${path}: no adapter named "${sanitizeName(name)}" (it holds ${manifest.adapters.length}: ${some}${manifest.adapters.length > 5 ? ', …' : ''})`)
  }
  return a
}

// ---------------------------------------------------------------- parsing

type Obj = Map<string, JsonValue>

class ManifestReader {
  constructor(private readonly file: string) {}

  fail(where: string, problem: string): never {
    throw new InputError('PACK_BAD_MANIFEST', `read ${this.file}: manifest ${where} ${problem}`)
  }

  object(v: JsonValue | undefined, where: string): Obj {
    if (!(v instanceof Map)) this.fail(where, 'must be an object')
    return v
  }

  array(v: JsonValue | undefined, where: string): JsonValue[] {
    if (!Array.isArray(v)) this.fail(where, 'must be an array')
    return v
  }

  string(v: JsonValue | undefined, where: string): string {
    if (typeof v !== 'string') this.fail(where, 'must be a string')
    return v
  }

  nullableString(v: JsonValue | undefined, where: string): string | null {
    return v === null ? null : this.string(v, where)
  }

  bool(v: JsonValue | undefined, where: string): boolean {
    if (typeof v !== 'boolean') this.fail(where, 'must be true or false')
    return v
  }

  number(v: JsonValue | undefined, where: string): number {
    if (typeof v !== 'number' || !Number.isFinite(v)) this.fail(where, 'must be a finite number')
    return v
  }

  positiveInt(v: JsonValue | undefined, where: string): number {
    if (typeof v !== 'number' || !Number.isSafeInteger(v) || v <= 0) this.fail(where, `must be a positive integer (got ${JSON.stringify(v ?? null)})`)
    return v
  }

  floatDType(v: JsonValue | undefined, where: string): DType {
    if (!isDType(v) || DTYPES[v].kind !== 'float') this.fail(where, `must be a float dtype (got ${sanitizeName(JSON.stringify(v ?? null), 40)})`)
    return v
  }

  strings(v: JsonValue | undefined, where: string): string[] {
    return this.array(v, where).map((s, i) => this.string(s, `${where}[${i}]`))
  }

  numberRecord(v: JsonValue | undefined, where: string): Record<string, number> {
    const out: Record<string, number> = Object.create(null)
    for (const [k, n] of this.object(v, where)) out[k] = this.number(n, `${where}["${sanitizeName(k, 40)}"]`)
    return out
  }

  stringRecord(v: JsonValue | undefined, where: string): Record<string, string> {
    const out: Record<string, string> = Object.create(null)
    for (const [k, s] of this.object(v, where)) out[k] = this.string(s, `${where}["${sanitizeName(k, 40)}"]`)
    return out
  }
}

/**
 * Parse and validate the manifest string of a pack.
 * @param json the `__metadata__.manifest` value
 * @param file the pack's path, for messages
 * @throws InputError PACK_BAD_MANIFEST naming the file and the offending field
 */
export function parseManifest(json: string, file: string): PackManifest {
  const rd = new ManifestReader(file)
  let root: JsonValue
  try {
    root = parseStrictJson(json)
  } catch (error) {
    if (error instanceof JsonSyntaxError) throw new InputError('PACK_BAD_MANIFEST', `read ${file}: manifest is not valid JSON (${sanitizeName(error.message, 120)})`)
    throw error
  }
  const o = rd.object(root, '')
  const dtype = rd.floatDType(o.get('dtype'), 'dtype')
  const slots = rd.positiveInt(o.get('slots'), 'slots')
  const modules = rd.array(o.get('modules'), 'modules').map((m, i) => parseModule(rd, m, `modules[${i}]`))
  const byName = new Map<string, PackModuleEntry>()
  for (const m of modules) {
    if (byName.has(m.name)) rd.fail('modules', `names module "${sanitizeName(m.name)}" twice`)
    byName.set(m.name, m)
  }
  const adapters = rd.array(o.get('adapters'), 'adapters').map((a, i) => parseAdapter(rd, a, `adapters[${i}]`, byName))
  if (adapters.length !== slots - 1) rd.fail('slots', `is ${slots} but there are ${adapters.length} adapters (expected slots = adapters + 1)`)
  const names = new Set<string>()
  adapters.forEach((a, i) => {
    if (a.slot !== i + 1) rd.fail(`adapters[${i}].slot`, `is ${a.slot} (expected ${i + 1}: adapters are listed in slot order from 1)`)
    if (names.has(a.name)) rd.fail(`adapters[${i}].name`, `"${sanitizeName(a.name)}" is used by two adapters`)
    names.add(a.name)
  })
  return {
    tool: rd.string(o.get('tool'), 'tool'),
    tool_version: rd.string(o.get('tool_version'), 'tool_version'),
    dtype,
    slots,
    base_model_name_or_path: rd.nullableString(o.get('base_model_name_or_path') ?? null, 'base_model_name_or_path'),
    modules,
    adapters,
  }
}

function parseModule(rd: ManifestReader, v: JsonValue, where: string): PackModuleEntry {
  const m = rd.object(v, where)
  const name = rd.string(m.get('name'), `${where}.name`)
  if (name.length === 0) rd.fail(`${where}.name`, 'is empty')
  const kind = m.get('kind')
  if (kind !== 'linear' && kind !== 'embedding') rd.fail(`${where}.kind`, 'must be "linear" or "embedding"')
  return {
    name,
    kind,
    in: rd.positiveInt(m.get('in'), `${where}.in`),
    out: rd.positiveInt(m.get('out'), `${where}.out`),
    R: rd.positiveInt(m.get('R'), `${where}.R`),
    fan_in_fan_out: rd.bool(m.get('fan_in_fan_out'), `${where}.fan_in_fan_out`),
  }
}

function parseAdapter(rd: ManifestReader, v: JsonValue, where: string, modules: ReadonlyMap<string, PackModuleEntry>): PackAdapterEntry {
  const a = rd.object(v, where)
  const name = rd.string(a.get('name'), `${where}.name`)
  if (name.length === 0) rd.fail(`${where}.name`, 'is empty')
  const sha256 = rd.string(a.get('sha256'), `${where}.sha256`)
  if (!/^[0-9a-f]{64}$/.test(sha256)) rd.fail(`${where}.sha256`, 'must be 64 lowercase hex digits')
  const targets = a.get('target_modules') ?? null
  const seen = new Set<string>()
  const adapterModules = rd.array(a.get('modules'), `${where}.modules`).map((mv, i) => {
    const at = `${where}.modules[${i}]`
    const m = rd.object(mv, at)
    const moduleName = rd.string(m.get('name'), `${at}.name`)
    const entry = modules.get(moduleName)
    if (!entry) rd.fail(`${at}.name`, `"${sanitizeName(moduleName)}" is not in the module table`)
    if (seen.has(moduleName)) rd.fail(`${at}.name`, `"${sanitizeName(moduleName)}" is listed twice for one adapter`)
    seen.add(moduleName)
    const r = rd.positiveInt(m.get('r'), `${at}.r`)
    if (r > entry.R) rd.fail(`${at}.r`, `is ${r}, larger than the module's R = ${entry.R}`)
    const keys = [m.get('a_key'), m.get('b_key')]
    if ((keys[0] === undefined) !== (keys[1] === undefined)) rd.fail(at, 'needs both a_key and b_key, or neither')
    return {
      name: moduleName,
      r,
      alpha: rd.number(m.get('alpha'), `${at}.alpha`),
      scaling: rd.number(m.get('scaling'), `${at}.scaling`),
      ...(m.has('dtype') ? {dtype: rd.floatDType(m.get('dtype'), `${at}.dtype`)} : {}),
      ...(keys[0] !== undefined ? {a_key: rd.string(keys[0], `${at}.a_key`), b_key: rd.string(keys[1], `${at}.b_key`)} : {}),
    }
  })
  return {
    name,
    slot: rd.positiveInt(a.get('slot'), `${where}.slot`),
    source: rd.string(a.get('source'), `${where}.source`),
    sha256,
    r: rd.positiveInt(a.get('r'), `${where}.r`),
    lora_alpha: rd.number(a.get('lora_alpha'), `${where}.lora_alpha`),
    use_rslora: rd.bool(a.get('use_rslora'), `${where}.use_rslora`),
    rank_pattern: rd.numberRecord(a.get('rank_pattern'), `${where}.rank_pattern`),
    alpha_pattern: rd.numberRecord(a.get('alpha_pattern'), `${where}.alpha_pattern`),
    fan_in_fan_out: rd.bool(a.get('fan_in_fan_out'), `${where}.fan_in_fan_out`),
    base_model_name_or_path: rd.nullableString(a.get('base_model_name_or_path') ?? null, `${where}.base_model_name_or_path`),
    target_modules: targets === null ? null : typeof targets === 'string' ? targets : rd.strings(targets, `${where}.target_modules`),
    modules_to_save: rd.strings(a.get('modules_to_save'), `${where}.modules_to_save`),
    extra_tensors: rd.strings(a.get('extra_tensors'), `${where}.extra_tensors`),
    dtype: rd.floatDType(a.get('dtype'), `${where}.dtype`),
    key_prefix: rd.string(a.get('key_prefix'), `${where}.key_prefix`),
    key_infix: rd.nullableString(a.get('key_infix') ?? null, `${where}.key_infix`),
    modules: adapterModules,
    safetensors_metadata: rd.stringRecord(a.get('safetensors_metadata'), `${where}.safetensors_metadata`),
    config: toPlainJson(rd.object(a.get('config'), `${where}.config`)) as Record<string, unknown>,
    ...(a.get('config_text') !== undefined ? {config_text: rd.string(a.get('config_text'), `${where}.config_text`)} : {}),
  }
}
