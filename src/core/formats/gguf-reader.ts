/**
 * Streaming GGUF reader: opening parses the header, metadata and tensor infos
 * (read in chunks, never the whole file); tensor data is read on demand by
 * positional reads. Every count and length from the file is checked against
 * a named limit before anything is allocated.
 */
import {openRegularFile} from '../io/regular-file.js'
import type {FileHandle} from 'node:fs/promises'
import {InputError} from '../errors.js'
import {readFully} from '../io/positional.js'
import {formatShape} from '../shape.js'
import {
  GGUF_DEFAULT_ALIGNMENT,
  GGUF_MAGIC,
  GGUF_MAX_DIMS,
  GGUF_VALUE_SIZES,
  GGML_TYPES,
  GgmlTypeInfo,
  GgufArray,
  GgufKV,
  GgufScalar,
  GgufValueType,
  GgufValueTypeId,
  ggmlByteSize,
  ggmlPad,
  ggmlTypeById,
} from './gguf-types.js'
import {sanitizeName} from './safetensors-header.js'
import type {FileFormat} from './file-format.js'
import {byteRangeEnd, readAt, readIntoAt, tensorEntry} from './tensor-bytes.js'

/** A key or string value longer than this is refused (CWE-770: a bogus length must not make us allocate gigabytes). */
export const GGUF_MAX_STRING_BYTES = 16 * 1024 * 1024
/** Arrays (token lists are the longest real ones, ~256k) longer than this are refused. */
export const GGUF_MAX_ARRAY_ITEMS = 1 << 24
/** More tensors than this is not a model. */
export const GGUF_MAX_TENSORS = 1 << 20
/** More metadata entries than this is not a model. */
export const GGUF_MAX_KV = 1 << 20
/** The header region is read in pieces of this size. */
const CHUNK = 1 << 20

export interface GgufTensorInfo {
  readonly name: string
  /** GGML dims, ne[0] (fastest-varying) first. */
  readonly ne: readonly number[]
  /** Row-major shape (ne reversed), as Hugging Face names it. */
  readonly shape: readonly number[]
  readonly type: GgmlTypeInfo
  /** Offset relative to the data section. */
  readonly offset: number
  readonly byteLength: number
}

class Cursor {
  private buf = new Uint8Array(0)
  private bufStart = 0
  pos = 0

  constructor(
    private readonly handle: FileHandle,
    readonly size: number,
    private readonly file: string,
  ) {}

  private async need(n: number): Promise<void> {
    if (this.pos + n <= this.bufStart + this.buf.length) return
    if (this.pos + n > this.size) throw new InputError('GGUF_TRUNCATED', `read ${this.file}: file ends at byte ${this.size} inside the header (needed ${n} bytes at ${this.pos})`)
    const length = Math.min(this.size - this.pos, Math.max(n, CHUNK))
    const next = new Uint8Array(length)
    await readFully(this.handle, next, this.pos)
    this.buf = next
    this.bufStart = this.pos
  }

  private async view(n: number): Promise<DataView> {
    await this.need(n)
    const v = new DataView(this.buf.buffer, this.buf.byteOffset + this.pos - this.bufStart, n)
    this.pos += n
    return v
  }

  async u32(): Promise<number> {
    return (await this.view(4)).getUint32(0, true)
  }

  /** A u64 that must be a safe integer (counts, lengths, offsets). */
  async u64(what: string): Promise<number> {
    const v = (await this.view(8)).getBigUint64(0, true)
    if (v > BigInt(Number.MAX_SAFE_INTEGER)) throw new InputError('GGUF_BAD_VALUE', `read ${this.file}: ${what} ${v} is too large`)
    return Number(v)
  }

  async string(what: string): Promise<string> {
    const length = await this.u64(`${what} length`)
    if (length > GGUF_MAX_STRING_BYTES) throw new InputError('GGUF_STRING_TOO_LONG', `read ${this.file}: ${what} is ${length} bytes (limit ${GGUF_MAX_STRING_BYTES})`)
    await this.need(length)
    const start = this.pos - this.bufStart
    this.pos += length
    try {
      return new TextDecoder('utf-8', {fatal: true}).decode(this.buf.subarray(start, start + length))
    } catch {
      throw new InputError('GGUF_BAD_STRING', `read ${this.file}: ${what} is not valid UTF-8`)
    }
  }

  async scalar(type: number, what: string): Promise<GgufScalar> {
    if (type === GgufValueType.STRING) return this.string(what)
    const size = GGUF_VALUE_SIZES[type]
    if (size === undefined) throw new InputError('GGUF_BAD_VALUE_TYPE', `read ${this.file}: ${what} has unknown value type ${type}`)
    const v = await this.view(size)
    switch (type) {
      case GgufValueType.UINT8:
        return v.getUint8(0)
      case GgufValueType.INT8:
        return v.getInt8(0)
      case GgufValueType.UINT16:
        return v.getUint16(0, true)
      case GgufValueType.INT16:
        return v.getInt16(0, true)
      case GgufValueType.UINT32:
        return v.getUint32(0, true)
      case GgufValueType.INT32:
        return v.getInt32(0, true)
      case GgufValueType.FLOAT32:
        return v.getFloat32(0, true)
      case GgufValueType.BOOL: {
        const b = v.getUint8(0)
        if (b > 1) throw new InputError('GGUF_BAD_VALUE', `read ${this.file}: ${what} is a BOOL holding ${b} (expected 0 or 1)`)
        return b === 1
      }
      case GgufValueType.UINT64:
        return v.getBigUint64(0, true)
      case GgufValueType.INT64:
        return v.getBigInt64(0, true)
      default:
        return v.getFloat64(0, true)
    }
  }
}

export class GgufFile {
  private constructor(
    readonly path: string,
    private readonly handle: FileHandle,
    readonly bytes: number,
    readonly version: number,
    /** Metadata by key, in file order. */
    readonly kv: ReadonlyMap<string, GgufKV>,
    /** Tensor infos by name, in file order. */
    readonly tensors: ReadonlyMap<string, GgufTensorInfo>,
    readonly alignment: number,
    /** Absolute file offset of the data section. */
    readonly dataStart: number,
  ) {}

  /** A metadata value, or undefined. */
  value(key: string): GgufScalar | GgufArray | undefined {
    return this.kv.get(key)?.value
  }

  /**
   * Open and parse header, metadata and tensor infos.
   * @throws InputError naming the file for a bad magic, unsupported version, bad lengths, unknown tensor types,
   *   misaligned or overlapping offsets, data past the end of the file
   */
  static async open(path: string): Promise<GgufFile> {
    const {handle, size} = await openRegularFile(path)
    try {
      const stats = {size}
      const c = new Cursor(handle, stats.size, path)
      const bad = (code: string, problem: string) => new InputError(code, `read ${path}: ${problem}`)
      if (stats.size < 24) throw bad('GGUF_TOO_SHORT', `file is ${stats.size} bytes, shorter than a GGUF header (24)`)
      const magic = await c.u32()
      if (magic !== GGUF_MAGIC) throw bad('GGUF_BAD_MAGIC', `not a GGUF file (magic 0x${magic.toString(16).padStart(8, '0')}, expected "GGUF")`)
      const version = await c.u32()
      if (version !== 2 && version !== 3) throw bad('GGUF_BAD_VERSION', `GGUF version ${version} is not supported (expected 2 or 3)`)
      const tensorCount = await c.u64('tensor count')
      const kvCount = await c.u64('metadata count')
      if (tensorCount > GGUF_MAX_TENSORS) throw bad('GGUF_TOO_MANY_TENSORS', `${tensorCount} tensors (limit ${GGUF_MAX_TENSORS})`)
      if (kvCount > GGUF_MAX_KV) throw bad('GGUF_TOO_MANY_KV', `${kvCount} metadata entries (limit ${GGUF_MAX_KV})`)
      const kv = new Map<string, GgufKV>()
      for (let i = 0; i < kvCount; i++) {
        const key = await c.string(`metadata key ${i}`)
        const what = `metadata "${sanitizeName(key)}"`
        if (kv.has(key)) throw bad('GGUF_DUPLICATE_KEY', `${what} appears twice`)
        const type = (await c.u32()) as GgufValueTypeId
        let value: GgufScalar | GgufArray
        if (type === GgufValueType.ARRAY) {
          const itemType = (await c.u32()) as GgufValueTypeId
          if (itemType === GgufValueType.ARRAY) throw bad('GGUF_BAD_VALUE_TYPE', `${what} is an array of arrays (not supported)`)
          const count = await c.u64(`${what} length`)
          if (count > GGUF_MAX_ARRAY_ITEMS) throw bad('GGUF_ARRAY_TOO_LONG', `${what} has ${count} items (limit ${GGUF_MAX_ARRAY_ITEMS})`)
          const items: GgufScalar[] = []
          for (let j = 0; j < count; j++) items.push(await c.scalar(itemType, `${what}[${j}]`))
          value = {itemType, items}
        } else {
          value = await c.scalar(type, what)
        }
        kv.set(key, {key, type, value})
      }
      const alignEntry = kv.get('general.alignment')
      let alignment = GGUF_DEFAULT_ALIGNMENT
      if (alignEntry) {
        const a = Number(alignEntry.value)
        if (alignEntry.type !== GgufValueType.UINT32 || !Number.isSafeInteger(a) || a <= 0 || (a & (a - 1)) !== 0) {
          throw bad('GGUF_BAD_ALIGNMENT', `general.alignment must be a UINT32 power of two (got ${String(alignEntry.value)})`)
        }
        alignment = a
      }
      const infos: Array<Omit<GgufTensorInfo, 'byteLength'> & {byteLength: number}> = []
      const names = new Set<string>()
      for (let i = 0; i < tensorCount; i++) {
        const name = await c.string(`tensor name ${i}`)
        const where = `tensor "${sanitizeName(name)}"`
        if (names.has(name)) throw bad('GGUF_DUPLICATE_TENSOR', `${where} appears twice`)
        names.add(name)
        const nDims = await c.u32()
        if (nDims > GGUF_MAX_DIMS) throw bad('GGUF_TOO_MANY_DIMS', `${where} has ${nDims} dimensions (limit ${GGUF_MAX_DIMS})`)
        const ne: number[] = []
        for (let d = 0; d < nDims; d++) ne.push(await c.u64(`${where} dimension ${d}`))
        const count = ne.reduce((a, b) => a * b, 1)
        if (!Number.isSafeInteger(count)) throw bad('GGUF_BAD_SHAPE', `${where} has too many elements`)
        const typeId = await c.u32()
        const type = ggmlTypeById(typeId)
        if (!type) throw bad('GGUF_UNSUPPORTED_TYPE', `${where} has GGML type ${typeId}, which lora does not read (${Object.keys(GGML_TYPES).join(', ')})`)
        if ((ne[0] ?? 1) % type.blockSize !== 0) {
          throw bad('GGUF_PARTIAL_BLOCK', `${where} has row size ${ne[0]}, not a multiple of ${type.name} block size (${type.blockSize})`)
        }
        const offset = await c.u64(`${where} offset`)
        if (offset % alignment !== 0) throw bad('GGUF_MISALIGNED', `${where} starts at data offset ${offset}, not a multiple of the alignment (${alignment})`)
        infos.push({name, ne, shape: [...ne].reverse(), type, offset, byteLength: ggmlByteSize(type, ne)})
      }
      const dataStart = ggmlPad(c.pos, alignment)
      const dataLength = stats.size - dataStart
      const sorted = [...infos].sort((a, b) => a.offset - b.offset)
      let cursor = 0
      for (const t of sorted) {
        if (t.offset < cursor) throw bad('GGUF_OVERLAP', `tensor "${sanitizeName(t.name)}" at data offset ${t.offset} overlaps the tensor before it (which ends at ${cursor})`)
        if (t.offset + t.byteLength > dataLength) {
          throw bad('GGUF_PAST_EOF', `tensor "${sanitizeName(t.name)}" ${t.type.name} ${formatShape(t.shape)} ends at data offset ${t.offset + t.byteLength}, past the end of the data (${dataLength} bytes)`)
        }
        cursor = t.offset + t.byteLength
      }
      const tensors = new Map(infos.map((t) => [t.name, t as GgufTensorInfo]))
      return new GgufFile(path, handle, stats.size, version, kv, tensors, alignment, dataStart)
    } catch (error) {
      await handle.close()
      throw error
    }
  }

  /** Tensor `name`'s entry; throws InputError naming the file when absent. */
  info(name: string): GgufTensorInfo {
    return tensorEntry(this.tensors, this.path, name)
  }

  /** Raw bytes `[begin, end)` of a tensor's data. */
  async readBytes(name: string, begin = 0, end?: number): Promise<Uint8Array> {
    const info = this.info(name)
    const stop = byteRangeEnd(name, info.byteLength, begin, end)
    return readAt(this.handle, this.path, this.dataStart + info.offset + begin, stop - begin)
  }

  /** Raw bytes `[begin, begin + target.byteLength)` of a tensor's data, into `target` (not checked for NaN: a caller computing on them refuses non-finite values itself). */
  async readInto(name: string, begin: number, target: Uint8Array): Promise<void> {
    const info = this.info(name)
    byteRangeEnd(name, info.byteLength, begin, begin + target.byteLength)
    await readIntoAt(this.handle, this.path, this.dataStart + info.offset + begin, target)
  }

  async close(): Promise<void> {
    await this.handle.close()
  }
}

/** `detect`'s view of a GGUF file: a file that begins with the magic "GGUF" (the extension is not trusted: temporary outputs have none). */
export const GGUF_FILE_FORMAT: FileFormat<'gguf'> = Object.freeze<FileFormat<'gguf'>>({
  kind: 'gguf',
  label: 'a GGUF file',
  async matches(probe) {
    const head = await probe.head()
    return probe.entries === undefined && head.length >= 4 && new DataView(head.buffer, head.byteOffset, 4).getUint32(0, true) === GGUF_MAGIC
  },
})
