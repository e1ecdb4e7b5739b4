/**
 * A small typed builder for ONNX graphs over the `onnx-proto` schema:
 * inputs, outputs, nodes, inline constants and initializers whose bytes live
 * in an external data file (`ExternalDataFile`), so a model's weights can
 * exceed protobuf's 2 GB limit. The encoded model is loaded by onnxruntime
 * from its file path, next to the data file.
 *
 * Small constants (Reshape shapes, Unsqueeze axes, Gather indices) stay
 * inline as `rawData`: shape inference cannot read them from external data.
 */
import onnxProto from 'onnx-proto'
import {closeSync, fstatSync, ftruncateSync, openSync, writeSync} from 'node:fs'
import {basename} from 'node:path'
import {DTYPES, DTypeInfo} from '../dtype.js'
import {InputError, withFileContextSync} from '../errors.js'

const {onnx} = onnxProto

/** Opset of the default ONNX domain used by every graph here. */
export const ONNX_OPSET = 17
/** Domain of onnxruntime's contrib operators (MoE, FusedMatMul, …). */
export const MS_DOMAIN = 'com.microsoft'

/** Element types the builder emits. */
export type ElemType = 'float32' | 'float16' | 'float64' | 'int64' | 'int32' | 'uint8'

/** Each element type's entry in the dtype table (an `ElemType` is onnxruntime's name there). */
const ELEM_DTYPES: Readonly<Record<ElemType, DTypeInfo>> = Object.freeze({float32: DTYPES.F32, float16: DTYPES.F16, float64: DTYPES.F64, int64: DTYPES.I64, int32: DTYPES.I32, uint8: DTYPES.U8})

const ELEM_TYPE_CODES = Object.freeze(Object.fromEntries(Object.entries(ELEM_DTYPES).map(([t, d]) => [t, d.onnx.code]))) as Readonly<Record<ElemType, number>>

/** Bytes per element of each `ElemType`. */
export const ELEM_BYTES = Object.freeze(Object.fromEntries(Object.entries(ELEM_DTYPES).map(([t, d]) => [t, d.bytes]))) as Readonly<Record<ElemType, number>>

/** A dimension: a fixed size or a symbolic name (`batch`). */
export type Dim = number | string

/** Attribute values a node may carry. */
export type AttrValue = number | string | number[] | {float: number} | {floats: number[]}

/** Where an external initializer's bytes are: a range of the data file. */
export interface ExternalRange {
  offset: number
  length: number
}

/**
 * An ONNX external data file, written by positional writes. Each tensor's
 * range starts on a 64 KiB boundary, so onnxruntime may map it from the
 * file instead of copying it.
 */
export class ExternalDataFile {
  /** Alignment of every range (bytes). */
  static readonly ALIGNMENT = 64 * 1024
  readonly path: string
  private fd: number | undefined
  private end: number

  private constructor(path: string, fd: number, end: number) {
    this.path = path
    this.fd = fd
    this.end = end
  }

  /**
   * Create (truncate) the data file at `path`.
   * @throws InputError naming the path for a system error (every operation of the file does)
   */
  static create(path: string): ExternalDataFile {
    const fd = withFileContextSync('write', path, () => openSync(path, 'w+'))
    return new ExternalDataFile(path, fd, 0)
  }

  /** Open an existing data file to append more tensors. */
  static append(path: string): ExternalDataFile {
    const fd = withFileContextSync('write', path, () => openSync(path, 'r+'))
    return new ExternalDataFile(path, fd, fstatSync(fd).size)
  }

  /** The file name as written in `externalData.location` (relative to the model). */
  get location(): string {
    return basename(this.path)
  }

  /** Reserve `length` bytes (zeros until written) and return their range. */
  reserve(length: number): ExternalRange {
    const offset = Math.ceil(this.end / ExternalDataFile.ALIGNMENT) * ExternalDataFile.ALIGNMENT
    this.end = offset + length
    withFileContextSync('write', this.path, () => ftruncateSync(this.requireFd(), this.end))
    return {offset, length}
  }

  /** Write `bytes` at `offset` within a reserved range. */
  write(offset: number, bytes: Uint8Array): void {
    const fd = this.requireFd()
    let done = 0
    withFileContextSync('write', this.path, () => {
      while (done < bytes.byteLength) done += writeSync(fd, bytes, done, bytes.byteLength - done, offset + done)
    })
  }

  /** Reserve and write `bytes` in one go. */
  add(bytes: Uint8Array): ExternalRange {
    const range = this.reserve(bytes.byteLength)
    this.write(range.offset, bytes)
    return range
  }

  close(): void {
    if (this.fd !== undefined) closeSync(this.fd)
    this.fd = undefined
  }

  private requireFd(): number {
    if (this.fd === undefined) throw new Error(`external data file ${this.path} is closed`)
    return this.fd
  }
}

/** A tensor already stored in an external data file. */
export interface ExternalTensor {
  /** File name relative to the model file. */
  location: string
  range: ExternalRange
  dims: readonly number[]
  type: ElemType
}

type TypedData = Float32Array | Float64Array | BigInt64Array | Int32Array | Uint16Array | Uint8Array

/**
 * Builds one ONNX graph. Names are plain strings; `fresh(prefix)` gives an
 * unused one. `encode()` returns the serialized ModelProto.
 */
export class GraphBuilder {
  private readonly nodes: InstanceType<typeof onnx.NodeProto>[] = []
  private readonly initializers: InstanceType<typeof onnx.TensorProto>[] = []
  private readonly inputs: InstanceType<typeof onnx.ValueInfoProto>[] = []
  private readonly outputs: InstanceType<typeof onnx.ValueInfoProto>[] = []
  private readonly names = new Set<string>()
  private readonly reserved = new Set<string>()
  private counter = 0
  private usesMsDomain = false

  constructor(readonly name: string) {}

  /** A name not used yet, e.g. `fresh('h')` → `h_12`. */
  fresh(prefix: string): string {
    let name: string
    do name = `${prefix}_${this.counter++}`
    while (this.names.has(name) || this.reserved.has(name))
    this.reserved.add(name)
    return name
  }

  /** Declare a graph input. */
  input(name: string, type: ElemType, dims: readonly Dim[]): string {
    this.claim(name)
    this.inputs.push(valueInfo(name, type, dims))
    return name
  }

  /** Declare a graph output (an existing value). */
  output(name: string, type: ElemType, dims: readonly Dim[]): string {
    this.outputs.push(valueInfo(name, type, dims))
    return name
  }

  /** An initializer stored inline as raw bytes (small constants only). */
  constant(name: string, data: TypedData, dims: readonly number[], type: ElemType = typeOf(data)): string {
    this.claim(name)
    const raw = new Uint8Array(data.buffer, data.byteOffset, data.byteLength).slice()
    this.initializers.push(onnx.TensorProto.create({name, dims: [...dims], dataType: ELEM_TYPE_CODES[type], rawData: raw}))
    return name
  }

  /** An int64 constant (shapes, axes, indices). */
  ints(name: string, values: readonly number[], dims: readonly number[] = [values.length]): string {
    return this.constant(name, BigInt64Array.from(values.map((v) => BigInt(v))), dims, 'int64')
  }

  /** A float32 scalar or vector constant. */
  floats(name: string, values: readonly number[], dims: readonly number[] = [values.length]): string {
    return this.constant(name, Float32Array.from(values), dims, 'float32')
  }

  /** An initializer whose bytes live in an external data file. */
  external(name: string, tensor: ExternalTensor): string {
    this.claim(name)
    this.initializers.push(
      onnx.TensorProto.create({
        name,
        dims: [...tensor.dims],
        dataType: ELEM_TYPE_CODES[tensor.type],
        dataLocation: onnx.TensorProto.DataLocation.EXTERNAL,
        externalData: [
          {key: 'location', value: tensor.location},
          {key: 'offset', value: String(tensor.range.offset)},
          {key: 'length', value: String(tensor.range.length)},
        ],
      }),
    )
    return name
  }

  /**
   * Add a node. `outputs` is a count (fresh names from the op type) or the
   * names; returns the output names.
   */
  node(op: string, inputs: readonly string[], attrs: Record<string, AttrValue> = {}, options: {outputs?: number | readonly string[]; domain?: string} = {}): string[] {
    const wanted = options.outputs ?? 1
    const outputs = typeof wanted === 'number' ? Array.from({length: wanted}, () => this.fresh(op.toLowerCase())) : [...wanted]
    for (const o of outputs) this.names.add(o)
    if (options.domain === MS_DOMAIN) this.usesMsDomain = true
    this.nodes.push(
      onnx.NodeProto.create({
        opType: op,
        input: [...inputs],
        output: outputs,
        name: this.fresh(`n_${op}`),
        domain: options.domain ?? '',
        attribute: Object.entries(attrs).map(([key, value]) => attribute(key, value)),
      }),
    )
    return outputs
  }

  /** `node` for single-output ops. */
  op(op: string, inputs: readonly string[], attrs: Record<string, AttrValue> = {}, domain?: string): string {
    return this.node(op, inputs, attrs, {domain})[0]!
  }

  /** Number of nodes so far. */
  get nodeCount(): number {
    return this.nodes.length
  }

  /** Serialize to ModelProto bytes. */
  encode(): Uint8Array {
    const opsetImport = [{domain: '', version: ONNX_OPSET}]
    if (this.usesMsDomain) opsetImport.push({domain: MS_DOMAIN, version: 1})
    const model = onnx.ModelProto.create({
      irVersion: 8,
      producerName: 'lora-toolkit',
      opsetImport,
      graph: onnx.GraphProto.create({
        name: this.name,
        node: this.nodes,
        initializer: this.initializers,
        input: this.inputs,
        output: this.outputs,
      }),
    })
    return onnx.ModelProto.encode(model).finish()
  }

  private claim(name: string): void {
    if (this.names.has(name)) throw new InputError('ONNX_DUPLICATE_NAME', `build graph ${this.name}: the name "${name}" is used twice`)
    this.names.add(name)
  }
}

function typeOf(data: TypedData): ElemType {
  if (data instanceof Float32Array) return 'float32'
  if (data instanceof Float64Array) return 'float64'
  if (data instanceof BigInt64Array) return 'int64'
  if (data instanceof Int32Array) return 'int32'
  if (data instanceof Uint8Array) return 'uint8'
  return 'float16'
}

function valueInfo(name: string, type: ElemType, dims: readonly Dim[]): InstanceType<typeof onnx.ValueInfoProto> {
  return onnx.ValueInfoProto.create({
    name,
    type: {
      tensorType: {
        elemType: ELEM_TYPE_CODES[type],
        shape: {dim: dims.map((d) => (typeof d === 'number' ? {dimValue: d} : {dimParam: d}))},
      },
    },
  })
}

function attribute(name: string, value: AttrValue): InstanceType<typeof onnx.AttributeProto> {
  const T = onnx.AttributeProto.AttributeType
  if (typeof value === 'number') return onnx.AttributeProto.create({name, type: T.INT, i: value})
  if (typeof value === 'string') return onnx.AttributeProto.create({name, type: T.STRING, s: new TextEncoder().encode(value)})
  if (Array.isArray(value)) return onnx.AttributeProto.create({name, type: T.INTS, ints: value})
  if ('float' in value) return onnx.AttributeProto.create({name, type: T.FLOAT, f: value.float})
  return onnx.AttributeProto.create({name, type: T.FLOATS, floats: value.floats})
}
