/**
 * Reading `lora-pack` files: the manifest, and the stacked tensors of each
 * module whole, by slot range (for packs larger than memory), or one slot
 * cut back to its adapter's own rank.
 *
 * Layout per module P (docs/formats.md, "lora-pack"):
 *   P.lora_A       [S, R, in]   (embedding modules: P.lora_embedding_A)
 *   P.lora_B       [S, out, R]  (embedding modules: P.lora_embedding_B)
 *   P.lora_scaling [S] F32
 * S = N + 1 slots; slot 0 is all zeros; adapter k (0-based) is slot k + 1.
 */
import {DTYPES} from '../dtype.js'
import {InputError} from '../errors.js'
import {Tensor} from '../tensor.js'
import {formatShape} from '../shape.js'
import {SafetensorsFile, openChecked} from './safetensors-file.js'
import {assertFiniteData, assertNullSlot} from './tensor-bytes.js'
import {sanitizeName} from './safetensors-header.js'
import {PACK_FORMAT, PACK_FORMAT_VERSION, PackAdapterEntry, PackAdapterModule, PackManifest, PackModuleEntry, adapterInSlot, adapterNamed, parseManifest} from './pack-manifest.js'
import type {FileFormat} from './file-format.js'

/** Which stack of a module: A [S, R, in] or B [S, out, R]. */
export type StackRole = 'A' | 'B'

/** The tensor names of module `P` in a pack. */
export function packTensorNames(module: Pick<PackModuleEntry, 'name' | 'kind'>): {a: string; b: string; scaling: string} {
  const infix = module.kind === 'embedding' ? 'lora_embedding_' : 'lora_'
  return {a: `${module.name}.${infix}A`, b: `${module.name}.${infix}B`, scaling: `${module.name}.lora_scaling`}
}

/** One adapter's block of one module, cut back to its own rank r. */
export interface PackSlotBlock {
  /** [r, in] */
  readonly a: Tensor
  /** [out, r] */
  readonly b: Tensor
  readonly r: number
  /** The exact scaling from the manifest (the F32 `lora_scaling` tensor holds it rounded to float32). */
  readonly scaling: number
}

export class PackFile {
  /** Modules by name, in manifest order. */
  readonly modules: ReadonlyMap<string, PackModuleEntry>

  private constructor(
    readonly file: SafetensorsFile,
    readonly manifest: PackManifest,
  ) {
    this.modules = new Map(manifest.modules.map((m) => [m.name, m]))
  }

  get path(): string {
    return this.file.path
  }

  /** S = N + 1. */
  get slots(): number {
    return this.manifest.slots
  }

  get adapters(): readonly PackAdapterEntry[] {
    return this.manifest.adapters
  }

  /**
   * Open a pack: header, manifest and tensor table, all checked against each other.
   * @throws InputError for a file that is not a `lora-pack` or whose manifest and tensors disagree
   */
  static async open(path: string): Promise<PackFile> {
    return openChecked(path, (file) => PackFile.fromFile(file))
  }

  /** Check an already open safetensors file as a pack (the caller keeps ownership of `file`). */
  static fromFile(file: SafetensorsFile): PackFile {
    const where = `read ${file.path}`
    const format = file.metadata.get('format')
    if (format !== PACK_FORMAT) {
      const hint = format === 'lora-pack-shared-b' ? ': it is a shared-B compressed pack (lora-pack-shared-b), not a plain lora-pack' : ''
      throw new InputError('PACK_NOT_A_PACK', `${where}: not a lora-pack file (__metadata__.format is ${format === undefined ? 'absent' : `"${sanitizeName(format, 40)}"`}, expected "${PACK_FORMAT}")${hint}`)
    }
    const version = file.metadata.get('format_version')
    if (version !== PACK_FORMAT_VERSION) {
      throw new InputError('PACK_UNSUPPORTED_VERSION', `${where}: lora-pack format_version ${version === undefined ? 'is absent' : `"${sanitizeName(version, 20)}"`} (this version of lora reads "${PACK_FORMAT_VERSION}")`)
    }
    const text = file.metadata.get('manifest')
    if (text === undefined) throw new InputError('PACK_BAD_MANIFEST', `${where}: __metadata__ has no "manifest"`)
    const manifest = parseManifest(text, file.path)
    checkTensors(file, manifest)
    return new PackFile(file, manifest)
  }

  /** Module `name`'s entry; throws InputError when the pack has no such module. */
  module(name: string): PackModuleEntry {
    const m = this.modules.get(name)
    if (!m) throw new InputError('PACK_MODULE_NOT_FOUND', `read ${this.path}: the pack has no module "${sanitizeName(name)}"`)
    return m
  }

  /** The adapter in `slot` (1..N); throws InputError for slot 0 or out of range. */
  adapterBySlot(slot: number): PackAdapterEntry {
    return adapterInSlot(this.manifest, this.path, slot)
  }

  /** The adapter named `name`; throws InputError naming a few that exist. */
  adapterByName(name: string): PackAdapterEntry {
    return adapterNamed(this.manifest, this.path, name)
  }

  /** Whole stack of `module`: A [S, R, in] or B [S, out, R] in the pack's dtype. */
  readStack(module: string, role: StackRole): Promise<Tensor> {
    const names = packTensorNames(this.module(module))
    return this.file.readTensor(role === 'A' ? names.a : names.b)
  }

  /** Slots `start .. start+count-1` of a stack: [count, R, in] or [count, out, R]. */
  readStackSlots(module: string, role: StackRole, start: number, count: number): Promise<Tensor> {
    const names = packTensorNames(this.module(module))
    return this.file.readRows(role === 'A' ? names.a : names.b, start, count)
  }

  /** `P.lora_scaling` [S] as float32 (0 for slot 0 and for adapters that do not target `module`). */
  async readScaling(module: string): Promise<Float32Array> {
    const t = await this.file.readTensor(packTensorNames(this.module(module)).scaling)
    return new Float32Array(t.toFloat32())
  }

  /** Adapter `slot`'s entry for `module`, or undefined when it does not target it. */
  slotModule(module: string, slot: number): PackAdapterModule | undefined {
    return this.adapterBySlot(slot).modules.find((m) => m.name === module)
  }

  /**
   * Adapter `slot`'s A [r, in] and B [out, r] on `module`, cut back from the padded
   * slot to the adapter's own rank, in the pack's dtype; undefined when the
   * adapter does not target `module`.
   */
  async readSlot(module: string, slot: number): Promise<PackSlotBlock | undefined> {
    const entry = this.module(module)
    const own = this.slotModule(module, slot)
    if (!own) return undefined
    const names = packTensorNames(entry)
    const size = DTYPES[this.manifest.dtype].bytes
    const {r} = own
    const aStart = slot * entry.R * entry.in * size
    const aBytes = await this.file.readBytes(names.a, aStart, aStart + r * entry.in * size)
    assertFiniteData(this.path, names.a, this.manifest.dtype, aBytes, [this.manifest.slots, entry.R, entry.in], aStart / size)
    const padded = (await this.file.readRows(names.b, slot, 1)).bytes
    const bBytes = new Uint8Array(entry.out * r * size)
    for (let row = 0; row < entry.out; row++) {
      bBytes.set(padded.subarray(row * entry.R * size, (row * entry.R + r) * size), row * r * size)
    }
    return {a: new Tensor(this.manifest.dtype, [r, entry.in], aBytes), b: new Tensor(this.manifest.dtype, [entry.out, r], bBytes), r, scaling: own.scaling}
  }

  /**
   * Check slot 0 of every stack and scaling: the null adapter must be all
   * zeros (and finite). Reads one slot per tensor, not the stacks.
   * @throws InputError PACK_NULL_SLOT_NOT_ZERO, TENSOR_NOT_FINITE
   */
  async checkNullSlot(): Promise<void> {
    for (const m of this.manifest.modules) {
      const names = packTensorNames(m)
      for (const name of [names.a, names.b]) assertNullSlot(this.path, name, (await this.file.readRows(name, 0, 1)).toFloat32())
      assertNullSlot(this.path, names.scaling, (await this.file.readRows(names.scaling, 0, 1)).toFloat32())
    }
  }

  close(): Promise<void> {
    return this.file.close()
  }
}

/** Every module has exactly its three tensors with the manifest's shapes and dtypes, and nothing else is stored. */
function checkTensors(file: SafetensorsFile, manifest: PackManifest): void {
  const S = manifest.slots
  const expected = new Map<string, {dtype: string; shape: number[]}>()
  for (const m of manifest.modules) {
    const names = packTensorNames(m)
    expected.set(names.a, {dtype: manifest.dtype, shape: [S, m.R, m.in]})
    expected.set(names.b, {dtype: manifest.dtype, shape: [S, m.out, m.R]})
    expected.set(names.scaling, {dtype: 'F32', shape: [S]})
  }
  for (const [name, want] of expected) {
    const info = file.tensors.get(name)
    if (!info) throw new InputError('PACK_TENSOR_MISSING', `read ${file.path}: the manifest lists a module whose tensor "${sanitizeName(name)}" is not in the file`)
    if (info.dtype !== want.dtype || formatShape(info.shape) !== formatShape(want.shape)) {
      throw new InputError(
        'PACK_TENSOR_MISMATCH',
        `read ${file.path}: tensor "${sanitizeName(name)}" is ${info.dtype} ${formatShape(info.shape)} but the manifest says ${want.dtype} ${formatShape(want.shape)}`,
      )
    }
  }
  for (const name of file.tensors.keys()) {
    if (!expected.has(name)) throw new InputError('PACK_TENSOR_UNEXPECTED', `read ${file.path}: tensor "${sanitizeName(name)}" belongs to no module of the manifest`)
  }
}

/** `detect`'s view of a `lora-pack` file: a safetensors file whose `__metadata__.format` is `lora-pack`. */
export const PACK_FILE_FORMAT: FileFormat<'pack'> = Object.freeze<FileFormat<'pack'>>({
  kind: 'pack',
  label: 'a lora-pack file',
  matches: async (probe) => (await probe.safetensorsMetadata())?.get('format') === PACK_FORMAT,
})
