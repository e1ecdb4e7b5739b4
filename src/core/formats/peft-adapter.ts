/**
 * PEFT LoRA adapter folders: `adapter_config.json` + `adapter_model.safetensors`.
 *
 * Tensor names as PEFT saves them (the `base_model.model.` prefix and an
 * adapter-name infix are both optional):
 *   <prefix><module>.lora_A[.<adapter>].weight            A [r, in]
 *   <prefix><module>.lora_B[.<adapter>].weight            B [out, r]
 *   <prefix><module>.lora_embedding_A[.<adapter>]         A [r, num_embeddings]
 *   <prefix><module>.lora_embedding_B[.<adapter>]         B [dim, r]
 *   <prefix><module>.lora_magnitude_vector[...]           DoRA magnitudes
 * Anything else (modules_to_save copies, classifier heads) is an extra tensor.
 */
import {readdir, stat} from 'node:fs/promises'
import {basename, join, resolve} from 'node:path'
import {InputError, withFileContext} from '../errors.js'
import {readRegularText} from '../io/regular-file.js'
import type {DType} from '../dtype.js'
import type {Tensor} from '../tensor.js'
import {formatShape} from '../shape.js'
import {SafetensorsFile} from './safetensors-file.js'
import {TensorInfo, sanitizeName} from './safetensors-header.js'
import {LoraConfig, isTargeted, moduleRankAndScaling, parseLoraConfig} from './peft-config.js'
import type {FileFormat} from './file-format.js'

export const ADAPTER_CONFIG_NAME = 'adapter_config.json'
export const ADAPTER_WEIGHTS_NAME = 'adapter_model.safetensors'
export const ADAPTER_PICKLE_NAME = 'adapter_model.bin'
export const PEFT_PREFIX = 'base_model.model.'
/** An adapter config larger than this is not a config. */
export const MAX_CONFIG_BYTES = 16 * 1024 * 1024
/** Module path segments of PEFT's ModulesToSaveWrapper: LoRA tensors under them are copies, not targets. */
const WRAPPER_SEGMENTS = new Set(['modules_to_save', 'original_module', 'base_layer'])

export type LoraKind = 'linear' | 'embedding'

export interface LoraModule {
  /** Module path without the `base_model.model.` prefix, e.g. `model.layers.0.self_attn.q_proj`. */
  readonly name: string
  readonly kind: LoraKind
  /** Input features (linear) or number of embeddings (embedding). */
  readonly in: number
  /** Output features (linear) or embedding dimension. */
  readonly out: number
  readonly r: number
  readonly alpha: number
  /** alpha / r, or alpha / sqrt(r) with rslora. */
  readonly scaling: number
  /** Tensor names in the file. */
  readonly aKey: string
  readonly bKey: string
  readonly dtype: DType
}

export type ParsedKey =
  | {role: 'A' | 'B'; kind: LoraKind; module: string}
  | {role: 'dora'; module: string}
  | {role: 'extra'}

/** Classify one tensor name of an adapter file. */
export function parseAdapterKey(key: string): ParsedKey {
  const name = key.startsWith(PEFT_PREFIX) ? key.slice(PEFT_PREFIX.length) : key
  let m = /^(.+)\.lora_(A|B)(?:\.([^.]+))?\.weight$/.exec(name)
  if (m) return wrapped(m[1]!) ? {role: 'extra'} : {role: m[2] as 'A' | 'B', kind: 'linear', module: m[1]!}
  m = /^(.+)\.lora_embedding_(A|B)(?:\.([^.]+))?$/.exec(name)
  if (m) return wrapped(m[1]!) ? {role: 'extra'} : {role: m[2] as 'A' | 'B', kind: 'embedding', module: m[1]!}
  m = /^(.+)\.lora_magnitude_vector(?:\.[^.]+)*$/.exec(name)
  if (m) return {role: 'dora', module: m[1]!}
  return {role: 'extra'}
}

function wrapped(module: string): boolean {
  return module.split('.').some((s) => WRAPPER_SEGMENTS.has(s))
}

export class LoraAdapter {
  private constructor(
    /** The adapter folder. */
    readonly dir: string,
    /** The folder's name. */
    readonly name: string,
    readonly config: LoraConfig,
    readonly file: SafetensorsFile,
    /** LoRA modules by name, in file order. */
    readonly modules: ReadonlyMap<string, LoraModule>,
    /** Tensors that are not LoRA pairs (modules_to_save weights, heads, wrapper copies). */
    readonly extraTensors: readonly TensorInfo[],
    /** Non-fatal findings worth telling the user. */
    readonly warnings: readonly string[],
  ) {}

  get weightsPath(): string {
    return this.file.path
  }

  /** The dtype shared by all LoRA tensors, or undefined when they differ. */
  get dtype(): DType | undefined {
    const set = new Set([...this.modules.values()].map((m) => m.dtype))
    return set.size === 1 ? [...set][0] : undefined
  }

  /** A of `module`, [r, in]. */
  readA(module: string): Promise<Tensor> {
    return this.file.readTensor(this.module(module).aKey)
  }

  /** B of `module`, [out, r]. */
  readB(module: string): Promise<Tensor> {
    return this.file.readTensor(this.module(module).bKey)
  }

  module(name: string): LoraModule {
    const m = this.modules.get(name)
    if (!m) throw new InputError('ADAPTER_MODULE_NOT_FOUND', `read ${this.dir}: adapter has no LoRA module "${sanitizeName(name)}"`)
    return m
  }

  close(): Promise<void> {
    return this.file.close()
  }

  /**
   * Load an adapter folder: config, header, and a checked module list.
   * @throws InputError for a missing or pickle-only folder, an unparsable config,
   *   a non-LoRA adapter, or LoRA tensors whose shapes disagree with each other or the config
   */
  static async load(dir: string): Promise<LoraAdapter> {
    const info = await withFileContext('read adapter', dir, () => stat(dir))
    if (!info.isDirectory()) {
      throw new InputError('ADAPTER_NOT_A_FOLDER', `read adapter ${dir}: not a folder (an adapter is a folder with ${ADAPTER_CONFIG_NAME} and ${ADAPTER_WEIGHTS_NAME})`)
    }
    const entries = new Set(await readdir(dir))
    const configPath = join(dir, ADAPTER_CONFIG_NAME)
    const weightsPath = join(dir, ADAPTER_WEIGHTS_NAME)
    if (!entries.has(ADAPTER_CONFIG_NAME)) {
      const other = [...entries].filter((e) => e.endsWith('.safetensors'))
      throw new InputError(
        'ADAPTER_NO_CONFIG',
        `read adapter ${dir}: no ${ADAPTER_CONFIG_NAME}, so this is not a PEFT adapter folder${other.length ? ` (found ${other.map((o) => sanitizeName(o)).join(', ')}: LoRA files in kohya/diffusers layouts are not supported)` : ''}`,
      )
    }
    if (!entries.has(ADAPTER_WEIGHTS_NAME)) {
      if (entries.has(ADAPTER_PICKLE_NAME)) {
        throw new InputError(
          'ADAPTER_PICKLE_ONLY',
          `read adapter ${dir}: only ${ADAPTER_PICKLE_NAME} (a pickle) is here; pickles can run code when loaded, so they are refused: convert it to ${ADAPTER_WEIGHTS_NAME} with PEFT's save_pretrained(safe_serialization=True)`,
        )
      }
      throw new InputError('ADAPTER_NO_WEIGHTS', `read adapter ${dir}: no ${ADAPTER_WEIGHTS_NAME}`)
    }
    const configText = await readConfigText(configPath)
    const config = {...parseLoraConfig(parseConfigText(configText, configPath), configPath), text: configText}
    const file = await SafetensorsFile.open(weightsPath)
    try {
      const {modules, extras, warnings} = collectModules(file, config, dir)
      return new LoraAdapter(resolve(dir), basename(resolve(dir)), config, file, modules, extras, warnings)
    } catch (error) {
      await file.close()
      throw error
    }
  }
}

async function readConfigText(path: string): Promise<string> {
  const text = await readRegularText(path, MAX_CONFIG_BYTES, (size) => new InputError('PEFT_CONFIG_INVALID', `read ${path}: ${size} bytes is too large for an adapter config`))
  if (text.startsWith('version https://git-lfs')) {
    throw new InputError('GIT_LFS_POINTER', `read ${path}: this is a Git LFS pointer, not the file (run \`git lfs pull\` where it came from)`)
  }
  return text
}

function parseConfigText(text: string, path: string): unknown {
  try {
    return JSON.parse(text)
  } catch (error) {
    throw new InputError('PEFT_CONFIG_INVALID', `read ${path}: not valid JSON (${(error as Error).message})`)
  }
}

function collectModules(
  file: SafetensorsFile,
  config: LoraConfig,
  dir: string,
): {modules: Map<string, LoraModule>; extras: TensorInfo[]; warnings: string[]} {
  const where = `read ${file.path}`
  const pairs = new Map<string, {kind: LoraKind; a?: TensorInfo; b?: TensorInfo}>()
  const extras: TensorInfo[] = []
  const dora: string[] = []
  for (const info of file.tensors.values()) {
    const key = parseAdapterKey(info.name)
    if (key.role === 'extra') {
      extras.push(info)
      continue
    }
    if (key.role === 'dora') {
      dora.push(key.module)
      continue
    }
    const pair = pairs.get(key.module) ?? {kind: key.kind}
    if (pair.kind !== key.kind) {
      throw new InputError('ADAPTER_KIND_CONFLICT', `${where}: module "${sanitizeName(key.module)}" has both linear and embedding LoRA tensors`)
    }
    const slot = key.role === 'A' ? 'a' : 'b'
    if (pair[slot]) {
      throw new InputError('ADAPTER_DUPLICATE_TENSOR', `${where}: module "${sanitizeName(key.module)}" has two lora_${key.role} tensors ("${sanitizeName(pair[slot]!.name)}" and "${sanitizeName(info.name)}"); adapters with several adapter names in one file are not supported`)
    }
    pair[slot] = info
    pairs.set(key.module, pair)
  }
  if (config.useDora || dora.length > 0) {
    throw new InputError(
      'ADAPTER_DORA_UNSUPPORTED',
      `read adapter ${dir}: DoRA adapter (use_dora${dora.length ? `, lora_magnitude_vector on ${dora.length} modules` : ''}): its magnitude vectors cannot be stacked or merged as plain LoRA, and dropping them would change the model`,
    )
  }
  const modules = new Map<string, LoraModule>()
  for (const [name, pair] of pairs) {
    if (!pair.a || !pair.b) {
      throw new InputError('ADAPTER_UNPAIRED', `${where}: module "${sanitizeName(name)}" has lora_${pair.a ? 'A' : 'B'} but no lora_${pair.a ? 'B' : 'A'}`)
    }
    const {a, b} = pair
    if (a.shape.length !== 2 || b.shape.length !== 2) {
      throw new InputError(
        'ADAPTER_UNSUPPORTED_LAYER',
        `${where}: module "${sanitizeName(name)}" has A ${formatShape(a.shape)} and B ${formatShape(b.shape)}: only 2-D (linear and embedding) LoRA is supported, not convolution LoRA`,
      )
    }
    const {r, alpha, scaling} = moduleRankAndScaling(config, name)
    const [aR, aIn] = a.shape
    const [bOut, bR] = b.shape
    if (aR !== r) {
      throw new InputError('ADAPTER_RANK_MISMATCH', `${where}: tensor "${sanitizeName(a.name)}" has shape ${formatShape(a.shape)} but r = ${r} (expected [${r}, ${aIn}])`)
    }
    if (bR !== r) {
      throw new InputError('ADAPTER_RANK_MISMATCH', `${where}: tensor "${sanitizeName(b.name)}" has shape ${formatShape(b.shape)} but r = ${r} (expected [${bOut}, ${r}])`)
    }
    if (a.dtype !== b.dtype) {
      throw new InputError('ADAPTER_DTYPE_MISMATCH', `${where}: module "${sanitizeName(name)}" stores A as ${a.dtype} and B as ${b.dtype}`)
    }
    checkScaling(config, name, alpha, scaling, dir)
    modules.set(name, {name, kind: pair.kind, in: aIn!, out: bOut!, r, alpha, scaling, aKey: a.name, bKey: b.name, dtype: a.dtype})
  }
  const warnings: string[] = []
  if (modules.size === 0) {
    throw new InputError(
      'ADAPTER_EMPTY',
      `read adapter ${dir}: ${ADAPTER_WEIGHTS_NAME} holds no LoRA tensors (lora_A / lora_B pairs${extras.length > 0 ? `; its ${extras.length} tensors, e.g. "${sanitizeName(extras[0]!.name)}", are full weights: a base model's file under an adapter's name?` : ''})`,
    )
  }
  const targets = config.targetModules
  if (Array.isArray(targets)) {
    const unused = targets.filter((t) => ![...modules.keys()].some((m) => m === t || m.endsWith(`.${t}`)))
    if (unused.length > 0) warnings.push(`target_modules ${unused.map((u) => JSON.stringify(u)).join(', ')} matched no LoRA tensors`)
  }
  const untargeted = [...modules.keys()].filter((m) => targets !== null && !isTargeted(config, m))
  if (untargeted.length > 0) {
    // PEFT creates LoRA layers only on the modules target_modules selects: such tensors are not this config's (wrong config, or tensors of another adapter)
    throw new InputError(
      'ADAPTER_UNTARGETED_TENSORS',
      `read adapter ${dir}: ${untargeted.length} LoRA module${untargeted.length > 1 ? 's are' : ' is'} not selected by target_modules ${JSON.stringify(targets)} (first: "${sanitizeName(untargeted[0]!)}"); the config does not describe these tensors`,
    )
  }
  const negative = [...modules.values()].filter((m) => m.alpha < 0)
  if (negative.length > 0) warnings.push(`lora_alpha is negative (${negative[0]!.alpha} on ${sanitizeName(negative[0]!.name)}): PEFT accepts it and the adapter's delta changes sign`)
  const copies = extras.filter((e) => parseAdapterKey(e.name).role === 'extra' && /\.lora_(embedding_)?[AB]\b/.test(e.name))
  if (copies.length > 0) {
    warnings.push(`${copies.length} LoRA tensors sit inside a modules_to_save wrapper (modules_to_save/original_module copies); they are kept as extra tensors, not routed`)
  }
  if (extras.length - copies.length > 0) {
    warnings.push(`${extras.length - copies.length} full tensors (modules_to_save or heads) are not LoRA pairs and cannot be routed per request`)
  }
  return {modules, extras, warnings}
}

/** The largest finite float32: scalings are stored and multiplied in float32. */
const F32_MAX = 3.4028234663852886e38

/**
 * A module's scaling must be usable: lora_alpha 0 makes it 0 (the adapter
 * changes nothing: refused), and a scaling past float32's range turns every
 * delta into ±Infinity (refused). A negative alpha is accepted, as PEFT
 * does (the delta changes sign), with a warning.
 * @throws InputError ADAPTER_BAD_SCALING
 */
function checkScaling(config: LoraConfig, module: string, alpha: number, scaling: number, dir: string): void {
  const where = `read adapter ${dir}/${ADAPTER_CONFIG_NAME}: module "${sanitizeName(module)}"`
  if (alpha === 0) throw new InputError('ADAPTER_BAD_SCALING', `${where}: lora_alpha is 0, so its scaling is 0 and the adapter changes nothing`)
  if (!(Math.abs(scaling) <= F32_MAX)) {
    throw new InputError('ADAPTER_BAD_SCALING', `${where}: lora_alpha ${alpha} gives scaling ${scaling}${config.useRslora ? ' (rsLoRA)' : ''}, past float32's range (${F32_MAX.toExponential(3)})`)
  }
}

/** `detect`'s view of a PEFT adapter: a folder holding `adapter_config.json`. */
export const PEFT_ADAPTER_FILE_FORMAT: FileFormat<'adapter'> = Object.freeze<FileFormat<'adapter'>>({
  kind: 'adapter',
  label: 'a PEFT adapter folder',
  matches: async (probe) => probe.entries?.includes(ADAPTER_CONFIG_NAME) ?? false,
})
