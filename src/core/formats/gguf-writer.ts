/**
 * Streaming GGUF v3 writer, in the order gguf-py's `GGUFWriter` enforces
 * (header → key-value metadata → tensor infos → aligned data). The whole
 * layout is planned from the tensor specs first, the header written and the
 * file preallocated (padding reads as zeros); tensor data then arrives in any
 * order by positional writes, under a temporary name until `commit()`.
 *
 * Shapes are given row-major (Hugging Face order, e.g. [out, in]); the file
 * stores GGML's ne[] reversed (ne[0] = the fastest-varying dimension).
 */
import {InputError, describeSystemError} from '../errors.js'
import {AtomicFile, OutputOptions} from '../io/atomic-output.js'
import {writeFully} from '../io/positional.js'
import {formatShape} from '../shape.js'
import {
  GGML_TYPES,
  GGUF_DEFAULT_ALIGNMENT,
  GGUF_MAGIC,
  GGUF_MAX_DIMS,
  GGUF_MAX_NAME_BYTES,
  GGUF_VERSION,
  GGUF_VALUE_SIZES,
  GgmlTypeName,
  GgufArray,
  GgufKV,
  GgufScalar,
  GgufValueType,
  ggmlByteSize,
  ggmlPad,
} from './gguf-types.js'
import {sanitizeName} from './safetensors-header.js'

export interface GgufTensorSpec {
  readonly name: string
  /** Row-major shape, e.g. [out, in]. */
  readonly shape: readonly number[]
  readonly type: GgmlTypeName
}

export interface GgufPlannedTensor extends GgufTensorSpec {
  /** GGML dims, ne[0] first. */
  readonly ne: readonly number[]
  /** Offset relative to the data section (a multiple of the alignment). */
  readonly offset: number
  readonly byteLength: number
}

export interface GgufPlan {
  /** Header, metadata and tensor infos, padded to the alignment. */
  readonly headerBytes: Uint8Array
  readonly dataStart: number
  readonly fileSize: number
  readonly alignment: number
  readonly tensors: ReadonlyMap<string, GgufPlannedTensor>
}

const encoder = new TextEncoder()

class ByteSink {
  private buf = new Uint8Array(4096)
  private view = new DataView(this.buf.buffer)
  length = 0

  private need(n: number): void {
    if (this.length + n <= this.buf.length) return
    let size = this.buf.length * 2
    while (size < this.length + n) size *= 2
    const next = new Uint8Array(size)
    next.set(this.buf.subarray(0, this.length))
    this.buf = next
    this.view = new DataView(next.buffer)
  }

  u8(v: number): void {
    this.need(1)
    this.view.setUint8(this.length, v)
    this.length += 1
  }
  u32(v: number): void {
    this.need(4)
    this.view.setUint32(this.length, v, true)
    this.length += 4
  }
  u64(v: number | bigint): void {
    this.need(8)
    this.view.setBigUint64(this.length, BigInt(v), true)
    this.length += 8
  }
  bytes(b: Uint8Array): void {
    this.need(b.length)
    this.buf.set(b, this.length)
    this.length += b.length
  }
  string(s: string): void {
    const b = encoder.encode(s)
    this.u64(b.length)
    this.bytes(b)
  }
  scalar(type: number, v: GgufScalar): void {
    const size = GGUF_VALUE_SIZES[type]
    if (type === GgufValueType.STRING) return this.string(String(v))
    if (size === undefined) throw new RangeError(`GGUF value type ${type} is not a scalar type`)
    this.need(size)
    const at = this.length
    switch (type) {
      case GgufValueType.UINT8:
        this.view.setUint8(at, Number(v))
        break
      case GgufValueType.INT8:
        this.view.setInt8(at, Number(v))
        break
      case GgufValueType.UINT16:
        this.view.setUint16(at, Number(v), true)
        break
      case GgufValueType.INT16:
        this.view.setInt16(at, Number(v), true)
        break
      case GgufValueType.UINT32:
        this.view.setUint32(at, Number(v), true)
        break
      case GgufValueType.INT32:
        this.view.setInt32(at, Number(v), true)
        break
      case GgufValueType.FLOAT32:
        this.view.setFloat32(at, Number(v), true)
        break
      case GgufValueType.BOOL:
        this.view.setUint8(at, v ? 1 : 0)
        break
      case GgufValueType.UINT64:
        this.view.setBigUint64(at, BigInt(v), true)
        break
      case GgufValueType.INT64:
        this.view.setBigInt64(at, BigInt(v), true)
        break
      case GgufValueType.FLOAT64:
        this.view.setFloat64(at, Number(v), true)
        break
    }
    this.length += size
  }
  result(padTo: number): Uint8Array {
    const total = ggmlPad(this.length, padTo)
    const out = new Uint8Array(total)
    out.set(this.buf.subarray(0, this.length))
    return out
  }
}

function isArray(v: GgufScalar | GgufArray): v is GgufArray {
  return typeof v === 'object' && v !== null && 'items' in v
}

/**
 * Plan a GGUF file: metadata, tensor infos and data offsets.
 * `general.alignment` is taken from `kv` when present (a UINT32), else 32 and added.
 * @throws InputError for names over 63 bytes, more than 4 dims, or rows that are not whole blocks
 */
export function planGguf(kv: readonly GgufKV[], specs: readonly GgufTensorSpec[], file = 'the GGUF file'): GgufPlan {
  const alignEntry = kv.find((e) => e.key === 'general.alignment')
  const alignment = alignEntry ? Number(alignEntry.value) : GGUF_DEFAULT_ALIGNMENT
  if (!Number.isSafeInteger(alignment) || alignment <= 0 || alignment % 8 !== 0) throw new RangeError(`general.alignment must be a positive multiple of 8 (got ${alignment})`)
  const entries: GgufKV[] = alignEntry ? [...kv] : [...kv, {key: 'general.alignment', type: GgufValueType.UINT32, value: alignment}]
  const keys = new Set<string>()
  for (const e of entries) {
    if (keys.has(e.key)) throw new RangeError(`GGUF key "${e.key}" appears twice`)
    keys.add(e.key)
  }
  const sink = new ByteSink()
  sink.u32(GGUF_MAGIC)
  sink.u32(GGUF_VERSION)
  sink.u64(specs.length)
  sink.u64(entries.length)
  for (const e of entries) {
    sink.string(e.key)
    sink.u32(e.type)
    if (e.type === GgufValueType.ARRAY) {
      if (!isArray(e.value)) throw new RangeError(`GGUF key "${e.key}" is an ARRAY but its value is not`)
      sink.u32(e.value.itemType)
      sink.u64(e.value.items.length)
      for (const item of e.value.items) sink.scalar(e.value.itemType, item)
    } else {
      if (isArray(e.value)) throw new RangeError(`GGUF key "${e.key}" holds an array but has type ${e.type}`)
      sink.scalar(e.type, e.value)
    }
  }
  const tensors = new Map<string, GgufPlannedTensor>()
  let offset = 0
  for (const spec of specs) {
    const where = `write ${file}: tensor "${sanitizeName(spec.name)}"`
    if (tensors.has(spec.name)) throw new RangeError(`tensor "${spec.name}" is planned twice`)
    const nameBytes = encoder.encode(spec.name).length
    if (nameBytes > GGUF_MAX_NAME_BYTES) {
      throw new InputError('GGUF_NAME_TOO_LONG', `${where}: name is ${nameBytes} bytes, llama.cpp reads at most ${GGUF_MAX_NAME_BYTES}`)
    }
    const shape = spec.shape.length === 0 ? [1] : spec.shape
    if (shape.length > GGUF_MAX_DIMS) throw new InputError('GGUF_TOO_MANY_DIMS', `${where}: shape ${formatShape(spec.shape)} has ${shape.length} dimensions, GGUF allows ${GGUF_MAX_DIMS}`)
    const type = GGML_TYPES[spec.type]
    const ne = [...shape].reverse()
    if (ne[0]! % type.blockSize !== 0) {
      throw new InputError('GGUF_PARTIAL_BLOCK', `${where}: row size (${ne[0]}) is not a multiple of ${spec.type} block size (${type.blockSize})`)
    }
    const byteLength = ggmlByteSize(type, ne)
    tensors.set(spec.name, {...spec, ne, offset, byteLength})
    sink.string(spec.name)
    sink.u32(ne.length)
    for (const d of ne) sink.u64(d)
    sink.u32(type.id)
    sink.u64(offset)
    offset += ggmlPad(byteLength, alignment)
  }
  const headerBytes = sink.result(alignment)
  return {headerBytes, dataStart: headerBytes.length, fileSize: headerBytes.length + offset, alignment, tensors}
}

export type GgufWriterOptions = OutputOptions

export class GgufWriter {
  private constructor(
    private readonly output: AtomicFile,
    readonly plan: GgufPlan,
  ) {}

  get path(): string {
    return this.output.finalPath
  }

  /** Where the file is while being written (readable before `commit()`). */
  get tempPath(): string {
    return this.output.tempPath
  }

  get tensors(): ReadonlyMap<string, GgufPlannedTensor> {
    return this.plan.tensors
  }

  /**
   * Plan, create under a temporary name, write header/metadata/tensor infos and preallocate.
   * @throws UsageError when the output exists and not `force`; InputError from `planGguf`
   */
  static async create(path: string, kv: readonly GgufKV[], specs: readonly GgufTensorSpec[], options: GgufWriterOptions = {}): Promise<GgufWriter> {
    const plan = planGguf(kv, specs, path)
    const output = await AtomicFile.createPlanned(path, plan.fileSize, plan.headerBytes, options)
    return new GgufWriter(output, plan)
  }

  /** Write part of tensor `name`'s data, starting `byteOffset` bytes into it. */
  async writeTensorBytes(name: string, byteOffset: number, data: Uint8Array): Promise<void> {
    const info = this.plan.tensors.get(name)
    if (!info) throw new RangeError(`tensor "${name}" is not in the planned GGUF file`)
    if (byteOffset < 0 || byteOffset + data.byteLength > info.byteLength) {
      throw new RangeError(`write of ${data.byteLength} bytes at ${byteOffset} is outside tensor "${name}" (${info.byteLength} bytes)`)
    }
    try {
      await writeFully(this.output.handle, data, this.plan.dataStart + info.offset + byteOffset)
    } catch (error) {
      throw describeSystemError(error, 'write', this.path)
    }
  }

  /** Write all of tensor `name`'s data. */
  async writeTensor(name: string, data: Uint8Array): Promise<void> {
    const info = this.plan.tensors.get(name)
    if (info && data.byteLength !== info.byteLength) throw new RangeError(`tensor "${name}" needs ${info.byteLength} bytes, got ${data.byteLength}`)
    await this.writeTensorBytes(name, 0, data)
  }

  async commit(): Promise<void> {
    await this.output.commit()
  }

  async abort(): Promise<void> {
    await this.output.abort()
  }
}
