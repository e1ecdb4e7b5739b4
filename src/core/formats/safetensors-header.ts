/**
 * The safetensors header: parsing with full validation, and planning a new
 * file's header.
 *
 * Layout (https://github.com/huggingface/safetensors, "Format"):
 *   8 bytes   N, unsigned little-endian u64: the header length
 *   N bytes   UTF-8 JSON object: `{"__metadata__": {str: str}, name: {dtype, shape, data_offsets: [begin, end]}, …}`,
 *             may be padded with spaces (0x20)
 *   rest      the data section; offsets are relative to its start, tensors are contiguous,
 *             without holes or overlaps, and cover it exactly.
 */
import {InputError} from '../errors.js'
import {DTYPES, DType, isDType} from '../dtype.js'
import {shapeSize} from '../shape.js'
import {JsonObject, JsonSyntaxError, JsonValue, parseStrictJson} from './strict-json.js'

/** Headers larger than this are refused, as the reference implementation does (a bogus length must not make us allocate gigabytes). */
export const SAFETENSORS_MAX_HEADER_BYTES = 100_000_000
/** More dimensions than this is certainly not a tensor a model holds. */
export const SAFETENSORS_MAX_DIMS = 16
/** The header is padded so that the data section starts at a multiple of this. */
export const SAFETENSORS_ALIGNMENT = 8
export const METADATA_KEY = '__metadata__'
export {shapeSize}

export interface TensorInfo {
  readonly name: string
  readonly dtype: DType
  readonly shape: readonly number[]
  /** [begin, end) relative to the start of the data section. */
  readonly dataOffsets: readonly [number, number]
  readonly byteLength: number
  readonly elementCount: number
}

export interface SafetensorsHeader {
  /** `__metadata__`, string → string. */
  readonly metadata: ReadonlyMap<string, string>
  /** Tensors by name, in header order. */
  readonly tensors: ReadonlyMap<string, TensorInfo>
}

export interface TensorSpec {
  readonly name: string
  readonly dtype: DType
  readonly shape: readonly number[]
}

/** Printable, bounded form of a name from a file (control characters escaped). */
export function sanitizeName(name: string, max = 120): string {
  // eslint-disable-next-line no-control-regex
  const clean = name.replace(/[\u0000-\u001f\u007f-\u009f\u2028\u2029]/g, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`)
  return clean.length > max ? `${clean.slice(0, max)}…` : clean
}

function bad(file: string, code: string, problem: string): InputError {
  return new InputError(code, `read ${file}: ${problem}`)
}

/**
 * Read the header length from the first 8 bytes and check it against the file size.
 * @returns N, the JSON header's length in bytes
 * @throws InputError when the file is too short or N is impossible
 */
export function parseHeaderLength(prefix: Uint8Array, fileSize: number, file: string): number {
  if (fileSize < 8) {
    throw bad(file, 'SAFETENSORS_TOO_SHORT', `file is ${fileSize} bytes, shorter than the 8-byte header length prefix`)
  }
  const n = new DataView(prefix.buffer, prefix.byteOffset, 8).getBigUint64(0, true)
  if (n > BigInt(SAFETENSORS_MAX_HEADER_BYTES)) {
    const lfs = new TextDecoder().decode(prefix.subarray(0, 8)) === 'version '
    throw bad(
      file,
      'SAFETENSORS_HEADER_TOO_LARGE',
      lfs
        ? 'this is a Git LFS pointer, not the tensor data (run `git lfs pull` where it came from)'
        : `header length ${n} is larger than the ${SAFETENSORS_MAX_HEADER_BYTES}-byte limit (not a safetensors file?)`,
    )
  }
  if (Number(n) > fileSize - 8) {
    throw bad(file, 'SAFETENSORS_HEADER_PAST_EOF', `header length ${n} runs past the end of the file (${fileSize} bytes)`)
  }
  return Number(n)
}

/**
 * Parse and validate the header JSON.
 * @param headerBytes the N header bytes (after the 8-byte prefix)
 * @param dataLength bytes in the data section (file size − 8 − N)
 * @throws InputError naming `file` for every violation of the format
 */
export function parseHeader(headerBytes: Uint8Array, dataLength: number, file: string): SafetensorsHeader {
  let text: string
  try {
    text = new TextDecoder('utf-8', {fatal: true, ignoreBOM: true}).decode(headerBytes)
  } catch {
    throw bad(file, 'SAFETENSORS_HEADER_NOT_UTF8', 'header is not valid UTF-8')
  }
  let root: JsonValue
  try {
    root = parseStrictJson(text)
  } catch (error) {
    if (error instanceof JsonSyntaxError) {
      const code = /appears twice/.test(error.message) ? 'SAFETENSORS_DUPLICATE_KEY' : 'SAFETENSORS_HEADER_NOT_JSON'
      throw bad(file, code, `header is not valid JSON: ${sanitizeName(error.message, 200)}`)
    }
    throw error
  }
  if (!(root instanceof Map)) throw bad(file, 'SAFETENSORS_HEADER_NOT_OBJECT', 'header JSON is not an object')

  const metadata = new Map<string, string>()
  const tensors = new Map<string, TensorInfo>()
  for (const [name, entry] of root) {
    if (name === METADATA_KEY) {
      if (!(entry instanceof Map)) throw bad(file, 'SAFETENSORS_BAD_METADATA', '__metadata__ is not an object of strings')
      for (const [k, v] of entry) {
        if (typeof v !== 'string') {
          throw bad(file, 'SAFETENSORS_BAD_METADATA', `__metadata__ value for "${sanitizeName(k)}" is not a string (got ${describe(v)})`)
        }
        metadata.set(k, v)
      }
      continue
    }
    tensors.set(name, parseTensorEntry(name, entry, file))
  }
  checkCoverage([...tensors.values()], dataLength, file)
  return {metadata, tensors}
}

function describe(v: JsonValue): string {
  if (v === null) return 'null'
  if (v instanceof Map) return 'an object'
  if (Array.isArray(v)) return 'an array'
  return typeof v
}

function parseTensorEntry(name: string, entry: JsonValue, file: string): TensorInfo {
  const where = `tensor "${sanitizeName(name)}"`
  if (!(entry instanceof Map)) throw bad(file, 'SAFETENSORS_BAD_TENSOR', `${where} is not an object`)
  const entryObject: JsonObject = entry
  for (const key of entryObject.keys()) {
    if (key !== 'dtype' && key !== 'shape' && key !== 'data_offsets') {
      throw bad(file, 'SAFETENSORS_BAD_TENSOR', `${where} has an unknown field "${sanitizeName(key)}"`)
    }
  }
  const dtype = entryObject.get('dtype')
  if (!isDType(dtype)) {
    throw bad(file, 'SAFETENSORS_UNKNOWN_DTYPE', `${where} has unknown dtype ${typeof dtype === 'string' ? `"${sanitizeName(dtype)}"` : describe(dtype ?? null)}`)
  }
  const shape = entryObject.get('shape')
  if (!Array.isArray(shape)) throw bad(file, 'SAFETENSORS_BAD_SHAPE', `${where} has no shape array`)
  if (shape.length > SAFETENSORS_MAX_DIMS) throw bad(file, 'SAFETENSORS_BAD_SHAPE', `${where} has ${shape.length} dimensions (limit ${SAFETENSORS_MAX_DIMS})`)
  for (const d of shape) {
    if (typeof d !== 'number' || !Number.isSafeInteger(d) || d < 0) {
      throw bad(file, 'SAFETENSORS_BAD_SHAPE', `${where} has shape ${JSON.stringify(shape).slice(0, 80)}: every dimension must be a non-negative integer`)
    }
  }
  const dims = shape as number[]
  let elementCount: number
  try {
    elementCount = shapeSize(dims)
  } catch {
    throw bad(file, 'SAFETENSORS_BAD_SHAPE', `${where} has shape [${dims.join(', ')}]: too many elements`)
  }
  const offsets = entryObject.get('data_offsets')
  if (
    !Array.isArray(offsets) ||
    offsets.length !== 2 ||
    !offsets.every((o) => typeof o === 'number' && Number.isSafeInteger(o) && o >= 0)
  ) {
    throw bad(file, 'SAFETENSORS_BAD_OFFSETS', `${where} needs data_offsets [begin, end] of non-negative integers`)
  }
  const [begin, end] = offsets as [number, number]
  const byteLength = elementCount * DTYPES[dtype].bytes
  if (end < begin || end - begin !== byteLength) {
    throw bad(
      file,
      'SAFETENSORS_OFFSETS_SIZE_MISMATCH',
      `${where} has data_offsets [${begin}, ${end}] (${end - begin} bytes) but ${dtype} [${dims.join(', ')}] needs ${byteLength} bytes`,
    )
  }
  return {name, dtype, shape: dims, dataOffsets: [begin, end], byteLength, elementCount}
}

function checkCoverage(infos: TensorInfo[], dataLength: number, file: string): void {
  const sorted = [...infos].sort((a, b) => a.dataOffsets[0] - b.dataOffsets[0] || a.dataOffsets[1] - b.dataOffsets[1])
  let cursor = 0
  let previous: TensorInfo | undefined
  for (const t of sorted) {
    const [begin, end] = t.dataOffsets
    if (end > dataLength) {
      throw bad(file, 'SAFETENSORS_OFFSETS_OUT_OF_BOUNDS', `tensor "${sanitizeName(t.name)}" ends at data offset ${end}, past the end of the data (${dataLength} bytes)`)
    }
    if (begin < cursor) {
      throw bad(file, 'SAFETENSORS_OFFSETS_OVERLAP', `tensor "${sanitizeName(t.name)}" [${begin}, ${end}] overlaps tensor "${sanitizeName(previous!.name)}" [${previous!.dataOffsets[0]}, ${previous!.dataOffsets[1]}]`)
    }
    if (begin > cursor) {
      throw bad(file, 'SAFETENSORS_OFFSETS_HOLE', `data bytes [${cursor}, ${begin}) belong to no tensor (hole before "${sanitizeName(t.name)}")`)
    }
    cursor = end
    previous = t
  }
  if (cursor !== dataLength) {
    throw bad(file, 'SAFETENSORS_TRAILING_BYTES', `${dataLength - cursor} bytes after the last tensor belong to no tensor (data section is ${dataLength} bytes, tensors cover ${cursor})`)
  }
}

export interface PlannedFile {
  /** The 8-byte prefix + padded JSON header. */
  readonly headerBytes: Uint8Array
  /** Absolute file offset of the data section. */
  readonly dataStart: number
  /** Total file size. */
  readonly fileSize: number
  readonly tensors: ReadonlyMap<string, TensorInfo>
}

/**
 * Plan a file: offsets for every tensor (in the given order, contiguous) and
 * the header bytes, padded with spaces so the data starts 8-byte aligned.
 * @throws RangeError for a duplicate name, a non-integer dimension or non-string metadata
 */
export function planFile(specs: readonly TensorSpec[], metadata?: Readonly<Record<string, string>> | ReadonlyMap<string, string>): PlannedFile {
  const tensors = new Map<string, TensorInfo>()
  const entries: string[] = []
  const metaEntries = metadata instanceof Map ? [...metadata] : Object.entries(metadata ?? {})
  if (metaEntries.length > 0) {
    const parts = metaEntries.map(([k, v]) => {
      if (typeof v !== 'string') throw new RangeError(`__metadata__ value for "${k}" must be a string`)
      return `${JSON.stringify(k)}:${JSON.stringify(v)}`
    })
    entries.push(`${JSON.stringify(METADATA_KEY)}:{${parts.join(',')}}`)
  }
  let offset = 0
  for (const spec of specs) {
    if (tensors.has(spec.name) || spec.name === METADATA_KEY) throw new RangeError(`tensor name "${spec.name}" is used twice or reserved`)
    if (!isDType(spec.dtype)) throw new RangeError(`unknown dtype ${spec.dtype}`)
    for (const d of spec.shape) if (!Number.isSafeInteger(d) || d < 0) throw new RangeError(`tensor "${spec.name}" has invalid shape [${spec.shape.join(', ')}]`)
    const elementCount = shapeSize(spec.shape)
    const byteLength = elementCount * DTYPES[spec.dtype].bytes
    const info: TensorInfo = {name: spec.name, dtype: spec.dtype, shape: [...spec.shape], dataOffsets: [offset, offset + byteLength], byteLength, elementCount}
    tensors.set(spec.name, info)
    entries.push(`${JSON.stringify(spec.name)}:{"dtype":${JSON.stringify(spec.dtype)},"shape":[${spec.shape.join(',')}],"data_offsets":[${offset},${offset + byteLength}]}`)
    offset += byteLength
  }
  const json = new TextEncoder().encode(`{${entries.join(',')}}`)
  const padded = Math.ceil((8 + json.length) / SAFETENSORS_ALIGNMENT) * SAFETENSORS_ALIGNMENT - 8
  const headerBytes = new Uint8Array(8 + padded).fill(0x20)
  new DataView(headerBytes.buffer).setBigUint64(0, BigInt(padded), true)
  headerBytes.set(json, 8)
  return {headerBytes, dataStart: 8 + padded, fileSize: 8 + padded + offset, tensors}
}
