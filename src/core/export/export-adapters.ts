/**
 * `lora export`: adapters out of `lora`'s containers into the files other
 * engines load. The input is a PEFT adapter folder, or a pack (`lora-pack`
 * or `lora-pack-shared-b`) with one adapter named or all of them; a packed
 * adapter is first unpacked (as `lora unpack` writes it) into a temporary
 * folder. Formats come from a table; today one: GGUF LoRA adapters for
 * llama.cpp.
 */
import {tmpdir} from 'node:os'
import {join} from 'node:path'
import {InputError, UsageError} from '../errors.js'
import {FileKind, detect} from '../formats/detect.js'
import {PackFile} from '../formats/pack-file.js'
import {SharedBFile} from '../formats/shared-b-file.js'
import {LoraAdapter} from '../formats/peft-adapter.js'
import {AdapterBase, openAdapterBase} from './adapter-base.js'
import {ADAPTER_GGUF_TYPES, AdapterGgufType, WrittenAdapter, writeGgufAdapter} from './gguf-adapter-writer.js'
import {AtomicDirectory} from '../io/atomic-output.js'
import {checkOutputs} from '../io/output-target.js'
import {createWorkFolder} from '../io/temporaries.js'

/** The kind of an `--all` output folder (its marker's): only such a folder is replaced by --force. */
const EXPORT_OUTPUT_KIND = 'gguf-adapters'
import {unpackSharedB} from '../compress/unpack-shared-b.js'
import {UnpackOptions, unpackPack} from '../pack/unpack.js'
import type {ProgressCallback} from '../progress.js'

interface ExportFormat {
  /** The file extension of one exported adapter. */
  readonly extension: string
  /** Output tensor types, the first the default. */
  readonly dtypes: readonly string[]
  readonly defaultDtype: string
  write(adapter: LoraAdapter, base: AdapterBase, out: string, options: {dtype: string; force?: boolean}): Promise<WrittenAdapter>
}

/** The export formats. */
export const EXPORT_FORMATS: Readonly<Record<'gguf', ExportFormat>> = Object.freeze({
  gguf: {
    extension: '.gguf',
    dtypes: ADAPTER_GGUF_TYPES,
    // llama.cpp's convert_lora_to_gguf.py writes F16 by default too
    defaultDtype: 'F16',
    write: (adapter, base, out, o) => writeGgufAdapter(adapter, base, out, {type: o.dtype as AdapterGgufType, force: o.force}),
  },
})
export type ExportFormatName = keyof typeof EXPORT_FORMATS

export interface ExportOptions {
  /** A PEFT adapter folder or a pack file. */
  readonly input: string
  /** The base model the adapter is for (Hugging Face folder or llama.cpp GGUF): architecture, tensor names, q/k layout. */
  readonly base: string
  /** Output file (one adapter) or folder (`all`). */
  readonly out: string
  readonly format: ExportFormatName
  /** Output tensor type (default: the format's). */
  readonly dtype?: string
  /** From a pack: this adapter. */
  readonly adapter?: string
  /** From a pack: every adapter, one file each, into the folder `out`. */
  readonly all?: boolean
  readonly force?: boolean
  readonly onProgress?: ProgressCallback
}

export interface ExportResult {
  readonly format: ExportFormatName
  readonly base: string
  readonly architecture: string
  readonly dtype: string
  readonly out: string
  readonly adapters: WrittenAdapter[]
}

/** What export needs of each packed kind: its adapters' names in slot order, and one adapter unpacked to a PEFT folder. */
interface PackedKind {
  names(file: string): Promise<string[]>
  unpack(options: UnpackOptions): Promise<unknown>
}

/** The packed kinds `detect` names that export reads. */
const PACKED_KINDS: Partial<Record<FileKind, PackedKind>> = Object.freeze({
  pack: {
    async names(file: string) {
      const pack = await PackFile.open(file)
      try {
        return pack.adapters.map((a) => a.name)
      } finally {
        await pack.close()
      }
    },
    unpack: unpackPack,
  },
  'shared-b': {
    async names(file: string) {
      const f = await SharedBFile.open(file)
      try {
        return f.manifest.adapters.map((a) => a.name)
      } finally {
        await f.close()
      }
    },
    unpack: unpackSharedB,
  },
})

/** A file-system-safe file name for an adapter name. */
function fileName(name: string, extension: string): string {
  const safe = name.replace(/[^A-Za-z0-9._-]+/g, '_').replace(/^\.+/, '_')
  return `${safe || 'adapter'}${extension}`
}

/**
 * Export adapters.
 * @throws UsageError for contradicting flags or an existing output; InputError for unreadable inputs, a base the adapter
 *   does not fit, or a DoRA adapter (its magnitudes are not LoRA)
 */
export async function exportAdapters(options: ExportOptions): Promise<ExportResult> {
  const format = EXPORT_FORMATS[options.format]
  const dtype = (options.dtype ?? format.defaultDtype).toUpperCase()
  if (!format.dtypes.includes(dtype)) throw new UsageError('BAD_FLAG', `--dtype ${options.dtype}: ${options.format} adapters are written as ${format.dtypes.map((d) => d.toLowerCase()).join(', ')}`)
  const kind = await detect(options.input)
  const packed = PACKED_KINDS[kind]
  if (kind !== 'adapter' && !packed) throw new InputError('EXPORT_NOT_AN_ADAPTER', `export ${options.input}: a ${kind} file, not a PEFT adapter folder or a pack`)
  const isPack = packed !== undefined
  if (!isPack && (options.adapter !== undefined || options.all)) throw new UsageError('BAD_FLAG', `--adapter and --all pick adapters out of a pack; ${options.input} is an adapter folder`)
  if (isPack && (options.adapter === undefined) === !options.all) throw new UsageError('BAD_FLAG', `${options.input} is a pack: name one adapter with --adapter NAME, or export every one with --all`)
  await checkOutputs([options.all ? {path: options.out, kind: 'folder', folderKind: EXPORT_OUTPUT_KIND, flag: '--out'} : {path: options.out, kind: 'file', flag: '--out'}], {force: options.force, inputs: [options.input, options.base]})
  const base = await openAdapterBase(options.base)
  const scratch = isPack ? await createWorkFolder(tmpdir(), 'export') : undefined
  try {
    const names = isPack ? (options.all ? await packed.names(options.input) : [options.adapter!]) : [undefined]
    const written: WrittenAdapter[] = []
    const exportOne = async (name: string | undefined, out: string) => {
      let dir = options.input
      if (name !== undefined) {
        dir = join(scratch!.path, fileName(name, ''))
        await packed!.unpack({file: options.input, adapter: name, out: dir})
      }
      const adapter = await LoraAdapter.load(dir)
      try {
        written.push({...(await format.write(adapter, base, out, {dtype, force: options.force})), name: name ?? adapter.name})
      } finally {
        await adapter.close()
      }
      options.onProgress?.({stage: 'adapters', done: written.length, total: names.length})
    }
    if (options.all) {
      const folder = await AtomicDirectory.create(options.out, {force: options.force, kind: EXPORT_OUTPUT_KIND})
      try {
        const used = new Set<string>()
        for (const name of names) {
          let file = fileName(name!, format.extension)
          for (let k = 2; used.has(file); k++) file = fileName(`${name}-${k}`, format.extension)
          used.add(file)
          await exportOne(name, join(folder.path, file))
        }
        await folder.commit()
      } catch (error) {
        await folder.abort()
        throw error
      }
      return {format: options.format, base: options.base, architecture: base.architecture, dtype, out: options.out, adapters: written.map((w) => ({...w, out: join(options.out, w.out.slice(folder.path.length + 1))}))}
    }
    await exportOne(names[0], options.out)
    return {format: options.format, base: options.base, architecture: base.architecture, dtype, out: options.out, adapters: written}
  } finally {
    await base.close()
    await scratch?.remove()
  }
}
