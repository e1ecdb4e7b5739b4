/**
 * Where a decoder graph's weights go: inline in the ModelProto (small
 * models, loaded from memory) or in an ONNX external data file beside the
 * model in a temporary folder (models past protobuf's 2 GB limit; see
 * ENGINE-NOTES), written tensor by tensor so memory holds one at a time.
 * Small constants (shapes, axes) always stay inline through the builder.
 */
import {writeFile} from 'node:fs/promises'
import {tmpdir} from 'node:os'
import {join} from 'node:path'
import {withFileContext} from '../errors.js'
import {WorkFolder, createWorkFolder} from '../io/temporaries.js'
import {ElemType, ExternalDataFile, ExternalTensor, GraphBuilder} from '../onnx/graph-builder.js'

/** Weights above this many bytes go to an external data file by default (protobuf refuses 2 GB). */
export const INLINE_WEIGHT_LIMIT = 1024 * 1024 * 1024

/** What to hand onnxruntime: model bytes, or a model path (external data beside it). */
export type EncodedModel = {kind: 'bytes'; bytes: Uint8Array} | {kind: 'file'; path: string; dir: string}

/** Adds weight initializers to a graph, inline or in an external data file. */
export class InitializerStore {
  private constructor(
    readonly g: GraphBuilder,
    private readonly data: ExternalDataFile | undefined,
    private readonly work: WorkFolder | undefined,
  ) {}

  private get dir(): string | undefined {
    return this.work?.path
  }

  /** Initializers kept in the ModelProto. */
  static inline(g: GraphBuilder): InitializerStore {
    return new InitializerStore(g, undefined, undefined)
  }

  /** Initializers written to `weights.bin` in a fresh temporary folder. */
  static async external(g: GraphBuilder): Promise<InitializerStore> {
    const work = await createWorkFolder(tmpdir(), 'decoder')
    return new InitializerStore(g, ExternalDataFile.create(join(work.path, 'weights.bin')), work)
  }

  /** Whether the weights live in an external data file. */
  get isExternal(): boolean {
    return this.data !== undefined
  }

  /** Add a weight initializer named `name` (float32 or uint8 data) and return the name. */
  add(name: string, data: Float32Array | Uint8Array, dims: readonly number[]): string {
    const type: ElemType = data instanceof Float32Array ? 'float32' : 'uint8'
    if (!this.data) return this.g.constant(name, data, dims, type)
    const range = this.data.add(new Uint8Array(data.buffer, data.byteOffset, data.byteLength))
    return this.g.external(name, {location: this.data.location, range, dims, type})
  }

  /**
   * A float32 tensor for a builder that declares its own initializers (the
   * serve layer's `emitProjectionDelta`): a range of the data file when the
   * store is external, else the values themselves.
   */
  tensor(data: Float32Array, dims: readonly number[]): ExternalTensor | {data: Float32Array; dims: readonly number[]; type: 'float32'} {
    if (!this.data) return {data, dims, type: 'float32'}
    const range = this.data.add(new Uint8Array(data.buffer, data.byteOffset, data.byteLength))
    return {location: this.data.location, range, dims, type: 'float32'}
  }

  /** Serialize the graph: bytes, or `decoder.onnx` beside the data file. */
  async finish(): Promise<EncodedModel> {
    const bytes = this.g.encode()
    if (!this.data || !this.dir) return {kind: 'bytes', bytes}
    this.data.close()
    const path = join(this.dir, 'decoder.onnx')
    await withFileContext('write', path, () => writeFile(path, bytes))
    return {kind: 'file', path, dir: this.dir}
  }

  /** Remove the temporary folder (after the session has loaded it, or on failure). */
  async dispose(): Promise<void> {
    this.data?.close()
    await this.work?.remove()
  }
}
