/**
 * The `lora-pack-shared-b` format (docs/formats.md): a `lora-pack` whose B
 * stacks are replaced by one shared basis per module.
 *
 * Per module P of the carried-over manifest (embedding modules use
 * `lora_embedding_A` / `lora_embedding_B_shared`):
 *   P.lora_A         [S, K, in]  A'_k of slot k; slot 0 and slots whose adapter
 *                                does not target P are zero; scaling folded in
 *   P.lora_B_shared  [out, K]    U, orthonormal columns up to the dtype's rounding
 * so ΔW_k = B_shared @ A[k]. Every tensor has one float dtype.
 * `__metadata__`: format, format_version, manifest (the source pack's, verbatim),
 * errors (JSON: {module: {K, errors: [one per slot: the measured relative error,
 * null where the slot holds no adapter on the module]}}), compression (JSON:
 * dtype, normalize, selection, tool, tool_version).
 */
import {DType, DTYPES, isDType} from '../dtype.js'
import {InputError} from '../errors.js'
import {SafetensorsFile, openChecked} from './safetensors-file.js'
import {sanitizeName} from './safetensors-header.js'
import {assertNullSlot} from './tensor-bytes.js'
import {JsonSyntaxError, JsonValue, parseStrictJson} from './strict-json.js'
import {PackAdapterEntry, PackManifest, PackModuleEntry, adapterInSlot, adapterNamed, parseManifest} from './pack-manifest.js'
import {formatShape} from '../shape.js'
import {Tensor} from '../tensor.js'
import type {FileFormat} from './file-format.js'

/** `__metadata__.format` of a shared-B pack. */
export const SHARED_B_FORMAT = 'lora-pack-shared-b'
/** `__metadata__.format_version` written and read. */
export const SHARED_B_FORMAT_VERSION = '1'

/** Per module: K and the measured error of each slot (null: no adapter there). */
export type SharedBErrors = Record<string, {K: number; errors: Array<number | null>}>

/** How the file was made (`__metadata__.compression`). */
export interface CompressionInfo {
  dtype: DType
  normalize: boolean
  /** `{rank}`, `{max_error}` or `{savings}` as asked. */
  selection: Record<string, number>
  tool: string
  tool_version: string
}

/** Tensor names of module P in a shared-B pack. */
export function sharedBTensorNames(module: Pick<PackModuleEntry, 'name' | 'kind'>): {a: string; b: string} {
  const infix = module.kind === 'embedding' ? 'lora_embedding_' : 'lora_'
  return {a: `${module.name}.${infix}A`, b: `${module.name}.${infix}B_shared`}
}

export class SharedBFile {
  readonly modules: ReadonlyMap<string, PackModuleEntry>
  /** Each module's K. */
  readonly ranks: ReadonlyMap<string, number>

  private constructor(
    readonly file: SafetensorsFile,
    readonly manifest: PackManifest,
    readonly errors: SharedBErrors,
    readonly compression: CompressionInfo,
    /** The dtype of every tensor. */
    readonly dtype: DType,
  ) {
    this.modules = new Map(manifest.modules.map((m) => [m.name, m]))
    this.ranks = new Map(Object.entries(errors).map(([name, e]) => [name, e.K]))
  }

  get path(): string {
    return this.file.path
  }

  /**
   * Open and check a shared-B pack: manifest, errors and tensors against each other.
   * @throws InputError for a file that is not one, or whose parts disagree
   */
  static async open(path: string): Promise<SharedBFile> {
    return openChecked(path, (file) => SharedBFile.fromFile(file))
  }

  /** Check an open safetensors file as a shared-B pack (the caller keeps ownership of `file`). */
  static fromFile(file: SafetensorsFile): SharedBFile {
    const where = `read ${file.path}`
    const format = file.metadata.get('format')
    if (format !== SHARED_B_FORMAT) {
      throw new InputError('SHARED_B_NOT_ONE', `${where}: not a lora-pack-shared-b file (__metadata__.format is ${format === undefined ? 'absent' : `"${sanitizeName(format, 40)}"`})`)
    }
    const version = file.metadata.get('format_version')
    if (version !== SHARED_B_FORMAT_VERSION) {
      throw new InputError('SHARED_B_UNSUPPORTED_VERSION', `${where}: format_version ${version === undefined ? 'is absent' : `"${sanitizeName(version, 20)}"`} (this version of lora reads "${SHARED_B_FORMAT_VERSION}")`)
    }
    const manifestText = file.metadata.get('manifest')
    if (manifestText === undefined) throw new InputError('SHARED_B_BAD_METADATA', `${where}: __metadata__ has no "manifest"`)
    const manifest = parseManifest(manifestText, file.path)
    const errors = parseErrors(file.metadata.get('errors'), file.path, manifest)
    const compression = parseCompression(file.metadata.get('compression'), file.path)
    const dtype = checkTensors(file, manifest, errors)
    return new SharedBFile(file, manifest, errors, compression, dtype)
  }

  module(name: string): PackModuleEntry {
    const m = this.modules.get(name)
    if (!m) throw new InputError('PACK_MODULE_NOT_FOUND', `read ${this.path}: no module "${sanitizeName(name)}"`)
    return m
  }

  /** The shared basis of `module`: [out, K]. */
  readSharedB(module: string): Promise<Tensor> {
    return this.file.readTensor(sharedBTensorNames(this.module(module)).b)
  }

  /** A' of `slot` on `module`: [K, in] (zeros where the slot holds no adapter on it). */
  async readA(module: string, slot: number): Promise<Tensor> {
    const m = this.module(module)
    const K = this.ranks.get(module)!
    if (!Number.isSafeInteger(slot) || slot < 0 || slot >= this.manifest.slots) throw new InputError('PACK_NO_SUCH_SLOT', `read ${this.path}: slot ${slot} is outside 0..${this.manifest.slots - 1}`)
    const t = await this.file.readRows(sharedBTensorNames(m).a, slot, 1)
    return new Tensor(this.dtype, [K, m.in], t.bytes)
  }

  /**
   * Check slot 0 of every A' stack: the null adapter must be all zeros (and finite).
   * @throws InputError PACK_NULL_SLOT_NOT_ZERO, TENSOR_NOT_FINITE
   */
  async checkNullSlot(): Promise<void> {
    for (const m of this.manifest.modules) {
      const name = sharedBTensorNames(m).a
      assertNullSlot(this.path, name, (await this.file.readRows(name, 0, 1)).toFloat32())
    }
  }

  /** The adapter in `slot` (1..N); throws InputError for slot 0 or out of range. */
  adapterBySlot(slot: number): PackAdapterEntry {
    return adapterInSlot(this.manifest, this.path, slot)
  }

  /** The adapter named `name`; throws InputError naming a few that exist. */
  adapterByName(name: string): PackAdapterEntry {
    return adapterNamed(this.manifest, this.path, name)
  }

  close(): Promise<void> {
    return this.file.close()
  }
}

/** The `errors` metadata string for modules in manifest order. */
export function serializeErrors(errors: SharedBErrors): string {
  return JSON.stringify(errors)
}

function parseErrors(text: string | undefined, path: string, manifest: PackManifest): SharedBErrors {
  const fail = (problem: string): never => {
    throw new InputError('SHARED_B_BAD_METADATA', `read ${path}: __metadata__.errors ${problem}`)
  }
  if (text === undefined) return fail('is absent')
  let root: JsonValue
  try {
    root = parseStrictJson(text)
  } catch (error) {
    if (error instanceof JsonSyntaxError) return fail(`is not valid JSON (${sanitizeName(error.message, 80)})`)
    throw error
  }
  if (!(root instanceof Map)) return fail('must be an object')
  const out: SharedBErrors = Object.create(null)
  for (const m of manifest.modules) {
    const entry = root.get(m.name)
    if (!(entry instanceof Map)) return fail(`has no entry for module "${sanitizeName(m.name)}"`)
    const K = entry.get('K')
    if (typeof K !== 'number' || !Number.isSafeInteger(K) || K < 1 || K > m.out) fail(`["${sanitizeName(m.name)}"].K must be an integer in 1..${m.out}`)
    const list = entry.get('errors')
    if (!Array.isArray(list) || list.length !== manifest.slots) fail(`["${sanitizeName(m.name)}"].errors must list one value per slot (${manifest.slots})`)
    const errors = (list as JsonValue[]).map((e) => {
      if (e !== null && (typeof e !== 'number' || !(e >= 0))) fail(`["${sanitizeName(m.name)}"].errors holds ${sanitizeName(JSON.stringify(e), 20)} (expected a non-negative number or null)`)
      return e as number | null
    })
    out[m.name] = {K: K as number, errors}
  }
  if (root.size !== manifest.modules.length) fail('names a module the manifest does not list')
  return out
}

function parseCompression(text: string | undefined, path: string): CompressionInfo {
  const fail = (problem: string): never => {
    throw new InputError('SHARED_B_BAD_METADATA', `read ${path}: __metadata__.compression ${problem}`)
  }
  if (text === undefined) return fail('is absent')
  let root: JsonValue
  try {
    root = parseStrictJson(text)
  } catch {
    return fail('is not valid JSON')
  }
  if (!(root instanceof Map)) return fail('must be an object')
  const dtype = root.get('dtype')
  if (!isDType(dtype)) return fail('.dtype is not a dtype')
  const selection: Record<string, number> = {}
  const sel = root.get('selection')
  if (!(sel instanceof Map)) return fail('.selection must be an object')
  for (const key of ['rank', 'max_error', 'savings']) {
    const v = sel.get(key)
    if (typeof v === 'number') selection[key] = v
  }
  const str = (key: string) => {
    const v = root.get(key)
    return typeof v === 'string' ? v : fail(`.${key} must be a string`)
  }
  return {dtype, normalize: root.get('normalize') === true, selection, tool: str('tool'), tool_version: str('tool_version')}
}

/** Every module has its two tensors with the right shapes in one float dtype, and nothing else is stored. */
function checkTensors(file: SafetensorsFile, manifest: PackManifest, errors: SharedBErrors): DType {
  const expected = new Map<string, number[]>()
  for (const m of manifest.modules) {
    const names = sharedBTensorNames(m)
    const K = errors[m.name]!.K
    expected.set(names.a, [manifest.slots, K, m.in])
    expected.set(names.b, [m.out, K])
  }
  let dtype: DType | undefined
  for (const [name, shape] of expected) {
    const info = file.tensors.get(name)
    if (!info) throw new InputError('PACK_TENSOR_MISSING', `read ${file.path}: tensor "${sanitizeName(name)}" of the manifest is not in the file`)
    if (formatShape(info.shape) !== formatShape(shape)) {
      throw new InputError('PACK_TENSOR_MISMATCH', `read ${file.path}: tensor "${sanitizeName(name)}" has shape ${formatShape(info.shape)} but the manifest and errors say ${formatShape(shape)}`)
    }
    if (DTYPES[info.dtype].kind !== 'float' || (dtype !== undefined && info.dtype !== dtype)) {
      throw new InputError('PACK_TENSOR_MISMATCH', `read ${file.path}: tensor "${sanitizeName(name)}" is ${info.dtype} (every tensor must have one float dtype${dtype ? `, ${dtype}` : ''})`)
    }
    dtype = info.dtype
  }
  for (const name of file.tensors.keys()) {
    if (!expected.has(name)) throw new InputError('PACK_TENSOR_UNEXPECTED', `read ${file.path}: tensor "${sanitizeName(name)}" belongs to no module of the manifest`)
  }
  return dtype!
}

/** `detect`'s view of a shared-B pack: a safetensors file whose `__metadata__.format` is `lora-pack-shared-b`. */
export const SHARED_B_FILE_FORMAT: FileFormat<'shared-b'> = Object.freeze<FileFormat<'shared-b'>>({
  kind: 'shared-b',
  label: 'a lora-pack-shared-b file',
  matches: async (probe) => (await probe.safetensorsMetadata())?.get('format') === SHARED_B_FORMAT,
})
