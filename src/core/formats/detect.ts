/**
 * The one place that tells file formats apart: `detect(path)` probes a path
 * (a folder's entry names, a file's first bytes, a safetensors header's
 * `__metadata__`, each read at most once) and returns the kind of the first
 * format in the registry that claims it. `inspect`, `unpack`, `merge` and
 * `quantize` (the model reader), `compress` and `bench` ask it instead of
 * sniffing files themselves.
 *
 * Adding a format: its file exports a `FileFormat` (formats/file-format.ts),
 * and one line here lists it, before any more general format it would also match.
 */
import {readdir, stat} from 'node:fs/promises'
import {InputError, withFileContext} from '../errors.js'
import {readFully} from '../io/positional.js'
import {openRegularFile} from '../io/regular-file.js'
import type {FileFormat, FormatProbe} from './file-format.js'
import {GGUF_FILE_FORMAT} from './gguf-reader.js'
import {PACK_FILE_FORMAT} from './pack-file.js'
import {PEFT_ADAPTER_FILE_FORMAT} from './peft-adapter.js'
import {SAFETENSORS_FILE_FORMAT, SafetensorsFile} from './safetensors-file.js'
import {SHARED_B_FILE_FORMAT} from './shared-b-file.js'
import {MODEL_FILE_FORMAT, isShardIndex, modelFileIn} from './sharded-model.js'

/** The registry, most specific first: the first format that matches names the path. */
export const FILE_FORMATS = Object.freeze([
  PEFT_ADAPTER_FILE_FORMAT,
  GGUF_FILE_FORMAT,
  PACK_FILE_FORMAT,
  SHARED_B_FILE_FORMAT,
  MODEL_FILE_FORMAT,
  SAFETENSORS_FILE_FORMAT,
] as const)

/** What `detect` can answer: `adapter`, `gguf`, `pack`, `shared-b`, `model`, `safetensors`. */
export type FileKind = (typeof FILE_FORMATS)[number]['kind']

/** Bytes of a file's head a format may look at. */
const HEAD_BYTES = 16

/** The registered format of this kind. */
export function fileFormat(kind: FileKind): FileFormat<FileKind> {
  return FILE_FORMATS.find((f) => f.kind === kind)!
}

/**
 * The kind of file or folder at `path`.
 * @throws InputError for a missing path, a folder that holds no adapter or
 *   model, or a file that is no known format (the safetensors reader's error
 *   says why it is not one)
 */
export async function detect(path: string): Promise<FileKind> {
  return kindOf(await probePath(path))
}

/**
 * The kind of a probed path (`detect` for callers that read more of the probe afterwards).
 * @throws InputError as `detect`
 */
export async function kindOf(probe: FormatProbe): Promise<FileKind> {
  for (const format of FILE_FORMATS) if (await format.matches(probe)) return format.kind
  // not an input error: the model format claims every folder, and the safetensors reader throws (saying why) for a file it cannot read
  throw new Error(`detect ${probe.path}: no format of the registry matched (${FILE_FORMATS.map((f) => f.label).join(', ')}); the last ones should match every folder and file`)
}

/**
 * A lazy probe of `path`.
 * @throws InputError for a missing path or one that is neither a file nor a folder
 */
export async function probePath(path: string): Promise<FormatProbe> {
  const info = await withFileContext('read', path, () => stat(path))
  if (!info.isFile() && !info.isDirectory()) throw new InputError('NOT_A_MODEL', `read ${path}: not a file or folder`)
  const entries = info.isDirectory() ? await withFileContext('read', path, () => readdir(path)) : undefined
  let head: Promise<Uint8Array> | undefined
  let metadata: Promise<ReadonlyMap<string, string> | undefined> | undefined
  return {
    path,
    entries,
    head: () => (head ??= entries ? Promise.resolve(new Uint8Array(0)) : readHead(path, Math.min(HEAD_BYTES, info.size))),
    safetensorsMetadata: () => (metadata ??= readMetadata(entries ? modelFileIn(path, entries) : path)),
  }
}

async function readHead(path: string, length: number): Promise<Uint8Array> {
  const {handle} = await openRegularFile(path)
  try {
    const head = new Uint8Array(length)
    await readFully(handle, head, 0)
    return head
  } finally {
    await handle.close()
  }
}

async function readMetadata(file: string): Promise<ReadonlyMap<string, string> | undefined> {
  if (isShardIndex(file)) return undefined
  const opened = await SafetensorsFile.open(file)
  await opened.close()
  return opened.metadata
}
