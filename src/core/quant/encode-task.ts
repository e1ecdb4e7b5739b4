/**
 * One chunk of a tensor to encode, as the encoding threads see it: rows as
 * stored (F32, F16 or BF16 bytes, optionally read in another row order) go
 * in, the scheme's row codec (`QuantScheme.codec`) writes them into the
 * tensor's encoded storage. The same function runs on the calling thread
 * (`--threads 1`) and in the workers (`encode-worker.ts`), so the bytes never
 * depend on the thread count. Errors cross threads as plain objects and are
 * rebuilt as the same `InputError` (code and one-line message).
 */
import {float32Decoder} from '../dtype.js'
import {InputError} from '../errors.js'
import type {BlockOptions} from './quant-scheme.js'
import {QUANT_SCHEMES, QuantSchemeName} from './schemes.js'

/** The stored float dtypes a chunk may arrive in. */
export type ChunkDtype = 'F32' | 'F16' | 'BF16'

/** Rows `[startRow, startRow + rowCount)` of a [rows, cols] tensor to encode into its storage. */
export interface EncodeTask {
  readonly scheme: QuantSchemeName
  readonly options: BlockOptions
  /** The whole tensor as encoded, [rows, cols]. */
  readonly shape: readonly [number, number]
  /** The memory holding the tensor's encoded storage (the scheme's codec lays it out; shared between threads). */
  readonly memory: ArrayBufferLike
  readonly startRow: number
  readonly rowCount: number
  readonly dtype: ChunkDtype
  /** `rowCount × cols` elements of `dtype`, row-major. */
  readonly bytes: Uint8Array
  /** Row r of the chunk is row `rowOrder[r]` of `bytes` (llama.cpp's q/k order); rows in order when absent. */
  readonly rowOrder?: Int32Array
}

/** Runs encode tasks on the current thread, reusing one float32 scratch buffer (no allocation per block or row). */
export class ChunkEncoder {
  private scratch = new Float32Array(0)

  /**
   * Decode the chunk's rows to float32 and encode them.
   * @throws InputError for values the scheme cannot encode (element indices counted in the whole tensor)
   */
  run(task: EncodeTask): void {
    const [, cols] = task.shape
    const codec = QUANT_SCHEMES[task.scheme].codec
    if (task.dtype === 'F16' && codec.encodeRowsF16) {
      // binary16 rows straight into the scheme's kernel: no float32 copy
      const bits = new Uint16Array(task.bytes.buffer, task.bytes.byteOffset, task.bytes.byteLength / 2)
      const storage = codec.storage(task.memory, task.shape, task.options)
      const order = task.rowOrder
      if (order) for (let r = 0; r < task.rowCount; r++) codec.encodeRowsF16(storage, task.shape, task.options, task.startRow + r, bits, order[r]! * cols, 1)
      else codec.encodeRowsF16(storage, task.shape, task.options, task.startRow, bits, 0, task.rowCount)
      return
    }
    const count = task.rowCount * cols
    if (task.dtype === 'F32' && !task.rowOrder && task.bytes.byteOffset % 4 === 0) {
      // float32 rows in order are encoded where they lie
      codec.encodeRows(codec.storage(task.memory, task.shape, task.options), task.shape, task.options, task.startRow, new Float32Array(task.bytes.buffer, task.bytes.byteOffset, count))
      return
    }
    if (this.scratch.length < count) this.scratch = new Float32Array(count)
    const values = this.scratch.subarray(0, count)
    const decode = float32Decoder(task.dtype, task.bytes, values)
    const order = task.rowOrder
    if (order) for (let r = 0; r < task.rowCount; r++) decode(order[r]! * cols, cols, r * cols)
    else decode(0, count, 0)
    codec.encodeRows(codec.storage(task.memory, task.shape, task.options), task.shape, task.options, task.startRow, values)
  }
}

/** An error as it crosses from a worker thread. */
export interface SerializedError {
  readonly name: string
  readonly message: string
  readonly code?: string
  readonly stack?: string
}

/** The plain-object form of an error thrown while encoding. */
export function serializeError(error: unknown): SerializedError {
  if (error instanceof InputError) return {name: 'InputError', code: error.code, message: error.message}
  if (error instanceof Error) return {name: error.name, message: error.message, stack: error.stack}
  return {name: 'Error', message: String(error)}
}

/** The error again on the receiving thread: the same `InputError` (code, message), or an `Error` naming the encoding thread. */
export function deserializeError(error: SerializedError): Error {
  if (error.name === 'InputError' && error.code !== undefined) return new InputError(error.code, error.message)
  const rebuilt = error.name === 'RangeError' ? new RangeError(error.message) : new Error(`in an encoding thread: ${error.name}: ${error.message}`)
  if (error.stack) rebuilt.stack = error.stack
  return rebuilt
}
