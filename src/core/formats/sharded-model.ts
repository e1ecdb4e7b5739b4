/**
 * Sharded checkpoints: `model.safetensors.index.json` (`{"metadata": {...},
 * "weight_map": {tensor: shard file}}`) read as one logical tensor map, and
 * `openModel`, which opens whatever a user points at (a file, an index, or a
 * model folder).
 */
import {readdir, stat} from 'node:fs/promises'
import {readRegularText} from '../io/regular-file.js'
import {basename, dirname, isAbsolute, join} from 'node:path'
import {InputError, withFileContext} from '../errors.js'
import type {Tensor} from '../tensor.js'
import {SafetensorsFile} from './safetensors-file.js'
import {TensorInfo, sanitizeName} from './safetensors-header.js'
import {JsonSyntaxError, parseStrictJson, toPlainJson} from './strict-json.js'
import type {TensorSource} from './tensor-source.js'
import type {FileFormat} from './file-format.js'
import {tensorEntry} from './tensor-bytes.js'

export const SHARD_INDEX_NAME = 'model.safetensors.index.json'
export const SINGLE_MODEL_NAME = 'model.safetensors'
/** An index larger than this is not an index (the largest real ones are a few MB). */
export const MAX_INDEX_BYTES = 64 * 1024 * 1024

export class ShardedModel implements TensorSource {
  private constructor(
    readonly path: string,
    readonly shards: ReadonlyMap<string, SafetensorsFile>,
    /** Tensor name → shard file name, in index order. */
    readonly weightMap: ReadonlyMap<string, string>,
    readonly tensors: ReadonlyMap<string, TensorInfo>,
    /** The index's own `metadata` object. */
    readonly indexMetadata: Readonly<Record<string, unknown>>,
  ) {}

  get metadata(): ReadonlyMap<string, string> {
    return this.shards.values().next().value?.metadata ?? new Map()
  }

  get bytes(): number {
    let total = 0
    for (const s of this.shards.values()) total += s.bytes
    return total
  }

  /** The shard holding `name`. */
  shardOf(name: string): SafetensorsFile {
    return this.shards.get(tensorEntry(this.weightMap, this.path, name))!
  }

  /**
   * Open an index file and every shard it names (headers only).
   * @throws InputError for a malformed index, an unsafe or missing shard path, or a tensor missing from its shard
   */
  static async open(indexPath: string): Promise<ShardedModel> {
    const text = await readRegularText(indexPath, MAX_INDEX_BYTES, (size) => new InputError('SHARD_INDEX_TOO_LARGE', `read ${indexPath}: ${size} bytes is too large for a shard index`))
    let root
    try {
      root = parseStrictJson(text)
    } catch (error) {
      if (error instanceof JsonSyntaxError) throw new InputError('SHARD_INDEX_NOT_JSON', `read ${indexPath}: not valid JSON: ${error.message}`)
      throw error
    }
    const weightMapJson = root instanceof Map ? root.get('weight_map') : undefined
    if (!(weightMapJson instanceof Map)) throw new InputError('SHARD_INDEX_NO_WEIGHT_MAP', `read ${indexPath}: no "weight_map" object`)
    const folder = dirname(indexPath)
    const weightMap = new Map<string, string>()
    const shards = new Map<string, SafetensorsFile>()
    try {
      for (const [tensor, file] of weightMapJson) {
        if (typeof file !== 'string') throw new InputError('SHARD_INDEX_BAD_ENTRY', `read ${indexPath}: weight_map entry for "${sanitizeName(tensor)}" is not a file name`)
        assertSafeShardPath(file, indexPath)
        weightMap.set(tensor, file)
        if (!shards.has(file)) {
          const shardPath = join(folder, file)
          try {
            await stat(shardPath)
          } catch {
            throw new InputError('SHARD_MISSING', `read ${indexPath}: shard "${sanitizeName(file)}" named in weight_map does not exist (${shardPath})`)
          }
          shards.set(file, await SafetensorsFile.open(shardPath))
        }
      }
      const tensors = new Map<string, TensorInfo>()
      for (const [tensor, file] of weightMap) {
        const info = shards.get(file)!.tensors.get(tensor)
        if (!info) throw new InputError('SHARD_TENSOR_MISSING', `read ${indexPath}: weight_map puts "${sanitizeName(tensor)}" in ${sanitizeName(file)}, which has no such tensor`)
        tensors.set(tensor, info)
      }
      const meta = root instanceof Map ? root.get('metadata') : undefined
      const indexMetadata = (meta instanceof Map ? toPlainJson(meta) : {}) as Record<string, unknown>
      return new ShardedModel(indexPath, shards, weightMap, tensors, indexMetadata)
    } catch (error) {
      for (const s of shards.values()) await s.close()
      throw error
    }
  }

  readTensor(name: string): Promise<Tensor> {
    return this.shardOf(name).readTensor(name)
  }

  readRows(name: string, start: number, count: number): Promise<Tensor> {
    return this.shardOf(name).readRows(name, start, count)
  }

  readBytes(name: string, begin?: number, end?: number): Promise<Uint8Array> {
    return this.shardOf(name).readBytes(name, begin, end)
  }

  readInto(name: string, begin: number, target: Uint8Array): Promise<void> {
    return this.shardOf(name).readInto(name, begin, target)
  }

  async close(): Promise<void> {
    for (const s of this.shards.values()) await s.close()
  }
}

function assertSafeShardPath(file: string, indexPath: string): void {
  const parts = file.split(/[\\/]/)
  if (file === '' || isAbsolute(file) || /^[a-zA-Z]:/.test(file) || parts.includes('..') || file.includes('\0')) {
    throw new InputError('SHARD_PATH_UNSAFE', `read ${indexPath}: shard path "${sanitizeName(file)}" must be a relative path inside the model folder`)
  }
}

/**
 * The file of a model folder to open, chosen as `openModel` does: the shard
 * index, else `model.safetensors`, else the only `.safetensors` file, else the
 * only `*.safetensors.index.json`.
 * @param entries the folder's entry names
 * @throws InputError NOT_A_MODEL when none of these is there
 */
export function modelFileIn(dir: string, entries: readonly string[]): string {
  if (entries.includes(SHARD_INDEX_NAME)) return join(dir, SHARD_INDEX_NAME)
  if (entries.includes(SINGLE_MODEL_NAME)) return join(dir, SINGLE_MODEL_NAME)
  const single = entries.filter((e) => e.endsWith('.safetensors'))
  if (single.length === 1) return join(dir, single[0]!)
  const indexes = entries.filter((e) => e.endsWith('.safetensors.index.json'))
  if (indexes.length === 1) return join(dir, indexes[0]!)
  throw new InputError(
    'NOT_A_MODEL',
    single.length > 1
      ? `read ${dir}: ${single.length} .safetensors files and no ${SHARD_INDEX_NAME} to say how they fit together`
      : `read ${dir}: no ${SINGLE_MODEL_NAME} or ${SHARD_INDEX_NAME} in this folder`,
  )
}

/** Whether a file path names a shard index (`*.index.json`) rather than a safetensors file. */
export function isShardIndex(path: string): boolean {
  return basename(path).endsWith('.index.json')
}

/**
 * Open a model or tensor file for reading: a `.safetensors` file, a
 * `model.safetensors.index.json`, or a folder holding either.
 * @throws InputError when nothing readable is there
 */
export async function openModel(path: string): Promise<SafetensorsFile | ShardedModel> {
  const info = await withFileContext('read', path, () => stat(path))
  if (info.isFile()) return isShardIndex(path) ? ShardedModel.open(path) : SafetensorsFile.open(path)
  if (!info.isDirectory()) throw new InputError('NOT_A_MODEL', `read ${path}: not a file or folder`)
  const file = modelFileIn(path, await readdir(path))
  return isShardIndex(file) ? ShardedModel.open(file) : SafetensorsFile.open(file)
}

/** `detect`'s view of a model: a folder (that is no adapter or pack) or a shard index. */
export const MODEL_FILE_FORMAT: FileFormat<'model'> = Object.freeze<FileFormat<'model'>>({
  kind: 'model',
  label: 'a model (folder or shard index)',
  matches: async (probe) => probe.entries !== undefined || isShardIndex(probe.path),
})
