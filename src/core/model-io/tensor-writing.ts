/**
 * What the model writers share while streaming tensors out: the sink into
 * the planned output, the encoding threads (when a tensor is quantized), the
 * write left running behind the next tensor, and the reusable copy buffers.
 */
import {BufferPool} from '../io/buffer-pool.js'
import {COPY_BUFFERS, COPY_BUFFER_BYTES} from './copy-stored.js'
import type {TensorEncoding} from './encode-tensor.js'
import type {ModelReader} from './model-reader.js'
import {WriteBehind} from './write-behind.js'

/** Writes `data` at `byteOffset` of stored tensor `name` in the output. */
export type TensorSink = (name: string, byteOffset: number, data: Uint8Array) => Promise<void>

/** The state of one output being written tensor by tensor. */
export interface TensorWriting {
  readonly source: ModelReader
  readonly sink: TensorSink
  /** The output as the user named it, for messages. */
  readonly output: string
  /** The encoding threads (present when some tensor is quantized). */
  readonly encoding: TensorEncoding | undefined
  readonly behind: WriteBehind
  readonly copyBuffers: BufferPool
}

/** Start writing into `sink` (of `output`, for messages), with the encoding threads the caller started (and closes). */
export function startWriting(source: ModelReader, sink: TensorSink, output: string, encoding?: TensorEncoding): TensorWriting {
  return {source, sink, output, encoding, behind: new WriteBehind(), copyBuffers: new BufferPool(COPY_BUFFER_BYTES, COPY_BUFFERS)}
}
