/**
 * What every readable tensor container offers (one safetensors file, a
 * sharded checkpoint): the header's tensor map, and tensor data on demand.
 */
import type {Tensor} from '../tensor.js'
import type {TensorInfo} from './safetensors-header.js'

export interface TensorSource {
  /** The path the user gave (file, index file or folder). */
  readonly path: string
  /** Every tensor by name. */
  readonly tensors: ReadonlyMap<string, TensorInfo>
  /** `__metadata__` (for sharded models: the first shard's). */
  readonly metadata: ReadonlyMap<string, string>
  /** Total bytes on disk. */
  readonly bytes: number
  /** Read a whole tensor. */
  readTensor(name: string): Promise<Tensor>
  /** Read rows `[start, start + count)` of the first dimension. */
  readRows(name: string, start: number, count: number): Promise<Tensor>
  /** Read raw bytes `[begin, end)` of a tensor's data. */
  readBytes(name: string, begin?: number, end?: number): Promise<Uint8Array>
  /** Read raw bytes `[begin, begin + target.byteLength)` of a tensor's data into `target`. */
  readInto(name: string, begin: number, target: Uint8Array): Promise<void>
  close(): Promise<void>
}
