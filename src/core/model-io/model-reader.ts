/**
 * A model as logical float tensors, whatever the storage: a safetensors file
 * or sharded checkpoint (plain, or holding weights in a scheme's safetensors
 * parts: nf4, int4), or a GGUF file (F32/F16/BF16 and the GGUF schemes' types:
 * Q4_0, Q8_0). Rows are decoded on demand to float32; the stored bytes stay
 * available for verbatim copies.
 */
import {dirname} from 'node:path'
import {stat} from 'node:fs/promises'
import {DTYPES, DType, dtypeFromGgml, toFloat32} from '../dtype.js'
import {withFileContext} from '../errors.js'
import {detect} from '../formats/detect.js'
import {GgufFile} from '../formats/gguf-reader.js'
import {SafetensorsFile} from '../formats/safetensors-file.js'
import {ShardedModel, openModel} from '../formats/sharded-model.js'
import type {TensorSource} from '../formats/tensor-source.js'
import {assertFiniteData, tensorEntry} from '../formats/tensor-bytes.js'
import {shapeSize} from '../shape.js'
import type {StoredQuantTensor} from '../quant/quant-scheme.js'
import {EncodedTensor, QUANT_SCHEMES, QUANT_SCHEME_NAMES, QuantSchemeName, TensorDecoder, createDecoder, schemeOfGgmlType} from '../quant/schemes.js'

export type TensorEncoding = 'plain' | QuantSchemeName

export interface LogicalTensor {
  readonly name: string
  /** Row-major shape ([out, in] for a linear weight). */
  readonly shape: readonly number[]
  /** Stored dtype (plain) or the float dtype the weight had before quantization. */
  readonly dtype: DType
  readonly encoding: TensorEncoding
  /** nf4/q4_0 block size or int4 group size. */
  readonly blockSize?: number
  readonly doubleQuant?: boolean
  /** Stored tensors making it up. */
  readonly parts: readonly string[]
  /** Shard file (sharded safetensors sources). */
  readonly shard?: string
}

/**
 * The weights stored in a scheme's parts among a safetensors model's tensors
 * (headers and the small state tensors only), by weight name.
 * @throws InputError for parts a scheme finds inconsistent (see each scheme's `findWeight`)
 */
export async function findQuantizedTensors(source: TensorSource, metadata: ReadonlyMap<string, string>): Promise<Map<string, StoredQuantTensor>> {
  const found = new Map<string, StoredQuantTensor>()
  for (const name of source.tensors.keys()) {
    for (const scheme of QUANT_SCHEME_NAMES) {
      const s = QUANT_SCHEMES[scheme]
      const weight = s.format === 'safetensors' ? await s.findWeight(source, name, metadata) : undefined
      if (weight) {
        found.set(weight.name, weight)
        break
      }
    }
  }
  return found
}

export class ModelReader {
  private cache: {name: string; decoder: TensorDecoder} | undefined

  private constructor(
    /** The path as given. */
    readonly path: string,
    readonly format: 'safetensors' | 'gguf',
    /** Logical tensors in storage order. */
    readonly tensors: ReadonlyMap<string, LogicalTensor>,
    private readonly safetensors: SafetensorsFile | ShardedModel | undefined,
    private readonly gguf: GgufFile | undefined,
    private readonly quantized: ReadonlyMap<string, StoredQuantTensor>,
    /** Folder holding config.json and other small files, when the model lives in one. */
    readonly folder: string | undefined,
    /** Shard file names in order (sharded safetensors only). */
    readonly shardFiles: readonly string[] | undefined,
    /** safetensors `__metadata__` (first shard) or empty. */
    readonly metadata: ReadonlyMap<string, string>,
  ) {}

  /** The underlying GGUF file (GGUF sources). */
  get ggufFile(): GgufFile | undefined {
    return this.gguf
  }

  /** Total bytes on disk. */
  get bytes(): number {
    return this.safetensors?.bytes ?? this.gguf!.bytes
  }

  /**
   * Open a model: a `.gguf` file, a `.safetensors` file, an index, or a folder.
   * @throws InputError for anything unreadable (see `openModel`, `GgufFile.open`, `findQuantizedTensors`)
   */
  static async open(path: string): Promise<ModelReader> {
    const info = await withFileContext('read', path, () => stat(path))
    if (info.isFile() && (await detect(path)) === 'gguf') {
      const g = await GgufFile.open(path)
      const tensors = new Map<string, LogicalTensor>()
      for (const t of g.tensors.values()) {
        const scheme = schemeOfGgmlType(t.type.name)
        const dtype = scheme ? 'F16' : (dtypeFromGgml(t.type.name) ?? (t.type.name as DType))
        tensors.set(t.name, {name: t.name, shape: t.shape, dtype, encoding: scheme ?? 'plain', blockSize: scheme ? QUANT_SCHEMES[scheme].defaultBlockSize : undefined, parts: [t.name]})
      }
      return new ModelReader(path, 'gguf', tensors, undefined, g, new Map(), undefined, undefined, new Map())
    }
    const source = await openModel(path)
    try {
      const quantized = await findQuantizedTensors(source, source.metadata)
      const partOf = new Map<string, string>()
      for (const q of quantized.values()) for (const p of q.parts) partOf.set(p, q.name)
      const tensors = new Map<string, LogicalTensor>()
      const shardOf = (name: string) => (source instanceof ShardedModel ? source.weightMap.get(name) : undefined)
      for (const t of source.tensors.values()) {
        const owner = partOf.get(t.name)
        if (owner !== undefined) {
          if (tensors.has(owner)) continue
          const q = quantized.get(owner)!
          tensors.set(owner, {name: owner, shape: q.shape, dtype: q.dtype, encoding: q.scheme as QuantSchemeName, blockSize: q.blockSize, doubleQuant: q.doubleQuant, parts: q.parts, shard: shardOf(q.parts[0]!)})
        } else {
          tensors.set(t.name, {name: t.name, shape: t.shape, dtype: t.dtype, encoding: 'plain', parts: [t.name], shard: shardOf(t.name)})
        }
      }
      const folder = info.isDirectory() ? path : dirname(source instanceof ShardedModel ? source.path : source.path)
      const shardFiles = source instanceof ShardedModel ? [...new Set(source.weightMap.values())] : undefined
      return new ModelReader(path, 'safetensors', tensors, source, undefined, quantized, folder, shardFiles, source.metadata)
    } catch (error) {
      await source.close()
      throw error
    }
  }

  get(name: string): LogicalTensor {
    return tensorEntry(this.tensors, this.path, name)
  }

  /** All stored parts of an encoded tensor. */
  async readEncoded(name: string): Promise<EncodedTensor> {
    const t = this.get(name)
    if (t.encoding === 'plain') throw new RangeError(`tensor "${name}" is not quantized`)
    const scheme = QUANT_SCHEMES[t.encoding]
    if (scheme.format === 'gguf') {
      const [rows, cols] = t.shape as [number, number]
      return scheme.fromGguf(await this.gguf!.readBytes(name), [rows, cols])
    }
    return scheme.readWeight(this.safetensors!, this.quantized.get(name)!)
  }

  /**
   * Rows `[start, start + count)` of the first dimension as float32 (a
   * 1-D tensor counts as one row). Quantized tensors are read whole once and
   * decoded by rows; the last one read stays cached.
   */
  async readRows(name: string, start: number, count: number): Promise<Float32Array> {
    const t = this.get(name)
    const rowElements = t.shape.length <= 1 ? shapeSize(t.shape) : shapeSize(t.shape.slice(1))
    if (t.encoding !== 'plain') {
      if (this.cache?.name !== name) this.cache = {name, decoder: createDecoder(await this.readEncoded(name))}
      const decoded = this.cache.decoder.decodeRows(start, count)
      // a NaN or infinite scale decodes to NaN: checked on what the merge and the quality report use
      assertFiniteData(this.path, name, 'F32', decoded, t.shape, start * rowElements)
      return decoded
    }
    const bytesPerRow = rowElements * DTYPES[t.dtype].bytes
    const bytes = await this.readBytes(name, start * bytesPerRow, (start + count) * bytesPerRow)
    assertFiniteData(this.path, name, t.dtype, bytes, t.shape, start * rowElements)
    const values = toFloat32(t.dtype, bytes)
    return t.dtype === 'F32' ? values.slice() : values
  }

  /** Raw stored bytes of a stored tensor (a plain tensor or one part). */
  async readBytes(stored: string, begin?: number, end?: number): Promise<Uint8Array> {
    return this.gguf ? this.gguf.readBytes(stored, begin, end) : this.safetensors!.readBytes(stored, begin, end)
  }

  /** Raw stored bytes `[begin, begin + target.byteLength)` of a stored tensor, into `target` (a reused buffer). */
  async readBytesInto(stored: string, begin: number, target: Uint8Array): Promise<void> {
    await (this.gguf ? this.gguf.readInto(stored, begin, target) : this.safetensors!.readInto(stored, begin, target))
  }

  /** Stored dtype and byte length of a stored tensor (safetensors sources). */
  storedInfo(stored: string): {dtype: DType; shape: readonly number[]; byteLength: number} {
    if (this.gguf) {
      const g = this.gguf.info(stored)
      const dtype = dtypeFromGgml(g.type.name)
      return {dtype: dtype !== undefined && DTYPES[dtype].kind === 'float' ? dtype : 'U8', shape: g.shape, byteLength: g.byteLength}
    }
    return tensorEntry(this.safetensors!.tensors, this.path, stored)
  }

  async close(): Promise<void> {
    this.cache = undefined
    await (this.gguf ? this.gguf.close() : this.safetensors!.close())
  }
}
