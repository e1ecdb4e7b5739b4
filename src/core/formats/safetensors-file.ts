/**
 * Streaming safetensors reader: opening parses the header only; tensor data
 * is read on demand with positional reads, whole or by row range. Memory is
 * bounded by what the caller asks for, never by the file.
 */
import {stat} from 'node:fs/promises'
import type {FileHandle} from 'node:fs/promises'
import {InputError} from '../errors.js'
import {DTYPES} from '../dtype.js'
import {Tensor} from '../tensor.js'
import {readFully} from '../io/positional.js'
import {openRegularFile} from '../io/regular-file.js'
import {TensorInfo, parseHeader, parseHeaderLength, sanitizeName} from './safetensors-header.js'
import type {TensorSource} from './tensor-source.js'
import type {FileFormat} from './file-format.js'
import {assertFiniteData, byteRangeEnd, readAt, readIntoAt, tensorEntry} from './tensor-bytes.js'

/** One read allocates at most this much; larger tensors must be read by rows. */
export const MAX_SINGLE_READ_BYTES = 2 ** 31

export class SafetensorsFile implements TensorSource {
  private constructor(
    readonly path: string,
    private readonly handle: FileHandle,
    /** File size in bytes. */
    readonly bytes: number,
    /** Length N of the JSON header. */
    readonly headerLength: number,
    readonly tensors: ReadonlyMap<string, TensorInfo>,
    readonly metadata: ReadonlyMap<string, string>,
  ) {}

  /** Absolute file offset where the data section begins. */
  get dataStart(): number {
    return 8 + this.headerLength
  }

  /**
   * Open `path` and parse its header (reads 8 + N bytes, nothing else).
   * @throws InputError for a missing file or any malformed header
   */
  static async open(path: string): Promise<SafetensorsFile> {
    const {handle, size} = await openRegularFile(path)
    try {
      const prefix = new Uint8Array(8)
      if (size >= 8) await readFully(handle, prefix, 0)
      const headerLength = parseHeaderLength(prefix, size, path)
      const headerBytes = new Uint8Array(headerLength)
      await readFully(handle, headerBytes, 8)
      const header = parseHeader(headerBytes, size - 8 - headerLength, path)
      return new SafetensorsFile(path, handle, size, headerLength, header.tensors, header.metadata)
    } catch (error) {
      await handle.close()
      throw error
    }
  }

  /** Header entry for `name`; throws InputError naming the file when absent. */
  info(name: string): TensorInfo {
    return tensorEntry(this.tensors, this.path, name)
  }

  /** Raw bytes `[begin, end)` of a tensor's data. */
  async readBytes(name: string, begin = 0, end?: number): Promise<Uint8Array> {
    const info = this.info(name)
    const length = byteRangeEnd(name, info.byteLength, begin, end) - begin
    if (length > MAX_SINGLE_READ_BYTES) {
      throw new InputError(
        'TENSOR_TOO_LARGE_TO_READ',
        `read ${this.path}: tensor "${sanitizeName(name)}" range is ${length} bytes, more than one read may hold (${MAX_SINGLE_READ_BYTES}); read it by rows`,
      )
    }
    return readAt(this.handle, this.path, this.dataStart + info.dataOffsets[0] + begin, length)
  }

  /** Raw bytes `[begin, begin + target.byteLength)` of a tensor's data, into `target` (not checked for NaN: a caller computing on them refuses non-finite values itself). */
  async readInto(name: string, begin: number, target: Uint8Array): Promise<void> {
    const info = this.info(name)
    byteRangeEnd(name, info.byteLength, begin, begin + target.byteLength)
    await readIntoAt(this.handle, this.path, this.dataStart + info.dataOffsets[0] + begin, target)
  }

  /**
   * A whole tensor, for computation.
   * @throws InputError TENSOR_NOT_FINITE when a float tensor holds NaN or ±Infinity
   */
  async readTensor(name: string): Promise<Tensor> {
    const info = this.info(name)
    const bytes = await this.readBytes(name)
    assertFiniteData(this.path, name, info.dtype, bytes, info.shape)
    return new Tensor(info.dtype, info.shape, bytes)
  }

  /**
   * Rows `[start, start + count)` of the first dimension, for computation.
   * @throws InputError TENSOR_NOT_FINITE when the rows hold NaN or ±Infinity
   */
  async readRows(name: string, start: number, count: number): Promise<Tensor> {
    const info = this.info(name)
    if (info.shape.length === 0) throw new RangeError(`tensor "${name}" is a scalar: it has no rows`)
    const rows = info.shape[0]!
    if (!(Number.isSafeInteger(start) && Number.isSafeInteger(count) && start >= 0 && count >= 0 && start + count <= rows)) {
      throw new RangeError(`rows [${start}, ${start + count}) are outside tensor "${name}" (${rows} rows)`)
    }
    const rowBytes = rows === 0 ? 0 : info.byteLength / rows
    const bytes = await this.readBytes(name, start * rowBytes, (start + count) * rowBytes)
    assertFiniteData(this.path, name, info.dtype, bytes, info.shape, (start * rowBytes) / DTYPES[info.dtype].bytes)
    return new Tensor(info.dtype, [count, ...info.shape.slice(1)], bytes)
  }

  async close(): Promise<void> {
    await this.handle.close()
  }
}

/**
 * Open `path` and check it as a particular kind of safetensors file (`check`
 * throws for a file that is not one, and the file is closed again).
 * @throws InputError from `SafetensorsFile.open` or from `check`
 */
export async function openChecked<T>(path: string, check: (file: SafetensorsFile) => T): Promise<T> {
  const file = await SafetensorsFile.open(path)
  try {
    return check(file)
  } catch (error) {
    await file.close()
    throw error
  }
}

/** Bytes per row of the first dimension (`byteLength` for a 1-D tensor's element). */
export function rowBytes(info: TensorInfo): number {
  const rest = info.shape.slice(1).reduce((a, b) => a * b, 1)
  return rest * DTYPES[info.dtype].bytes
}

/** Size of a file, or undefined when it does not exist. */
export async function fileSize(path: string): Promise<number | undefined> {
  try {
    return (await stat(path)).size
  } catch {
    return undefined
  }
}

/** `detect`'s view of a plain safetensors file (what no more specific format claimed). */
export const SAFETENSORS_FILE_FORMAT: FileFormat<'safetensors'> = Object.freeze<FileFormat<'safetensors'>>({
  kind: 'safetensors',
  label: 'a safetensors file',
  matches: async (probe) => probe.entries === undefined && (await probe.safetensorsMetadata()) !== undefined,
})
