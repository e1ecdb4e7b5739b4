/**
 * One tensor encoded with a scheme by the encoding threads (`quant/encode-pool.ts`)
 * while this thread reads ahead: the tensor's rows are cut into tasks of
 * about `TASK_BYTES` bytes, each read (or computed) into a reusable
 * shared buffer and handed to the least busy thread, which decodes the rows
 * to float32 and writes its blocks into the tensor's encoded storage. At most
 * `3·threads + 2` chunk buffers exist at once, so memory stays flat whatever
 * the model's size.
 *
 * Two ways in:
 * - a plain F32/F16/BF16 tensor written as it is (what `lora quantize` does):
 *   stored bytes go straight to the threads, which also put q/k rows into
 *   llama.cpp's order (`ggufRowOrder`): no float32 copy on this thread;
 * - anything else (a merge delta, a quantized source, a transpose): rows are
 *   decoded and changed here in chunks of `ENCODE_CHUNK_ELEMENTS`
 *   (one read ahead), then handed over as float32 (q/k rows put in order by
 *   the threads there too).
 * Either way the threads run the scheme's row codec, so the bytes are those of
 * `createEncoder` on one thread.
 */
import {DTYPES} from '../dtype.js'
import {InputError} from '../errors.js'
import {assertFiniteData, assertFiniteResult} from '../formats/tensor-bytes.js'
import {BufferPool} from '../io/buffer-pool.js'
import {transposeTyped} from '../linalg/dense.js'
import {ggufRowOrder} from '../models/gguf-names.js'
import {EncodePool} from '../quant/encode-pool.js'
import type {ChunkDtype} from '../quant/encode-task.js'
import {EncodedTensor, QUANT_SCHEMES, QuantOptions, checkEncodable} from '../quant/schemes.js'
import {shapeSize} from '../shape.js'
import type {ModelReader} from './model-reader.js'
import {OrderedTasks} from './ordered-tasks.js'

/**
 * Bytes of rows per encoding task (1 M binary16 elements, half a million float32 ones): small enough
 * that the threads finish a tensor together, large enough that messages and reads cost little.
 */
export const TASK_BYTES = 2 << 20
/** Rows written as a float dtype are decoded and changed in chunks of about this many elements (the merge's Gemm likes large chunks). */
export const ROW_CHUNK_ELEMENTS = 1 << 22
/**
 * Rows to be encoded are decoded and changed on this thread in chunks of about this many elements: half
 * of `ROW_CHUNK_ELEMENTS`, since the threads hold chunk buffers of their own (as fast, 50 MB less at peak
 * for a merge of the 542 M model).
 */
export const ENCODE_CHUNK_ELEMENTS = 1 << 21

/** Changes rows `[start, start + count)` of a tensor (float32, row-major) before they are written. */
export type RowTransform = (start: number, count: number, rows: Float32Array) => Promise<Float32Array>

/** What to encode: a 2-D logical tensor of the source, how it changes on the way, and the scheme. */
export interface EncodeTensorRequest {
  readonly source: ModelReader
  /** The source's logical tensor. */
  readonly name: string
  readonly quant: QuantOptions
  /** Changes source rows (float32) before anything else. */
  readonly transform?: RowTransform
  /** Put rows into llama.cpp's q/k order within this many heads. */
  readonly permuteHeads?: number
  /** Encode the transpose ([cols, rows]) of the tensor. */
  readonly transpose?: boolean
  /** The output as the user named it, for the message when a transform gives NaN or ±Infinity. */
  readonly output?: string
}

/** Rows per chunk: a multiple of `align` near `elements / cols`, at most `rows`. */
export function chunkRows(rows: number, cols: number, align: number, elements: number): number {
  const target = Math.max(1, Math.floor(elements / Math.max(1, cols)))
  return Math.min(rows, Math.max(align, target - (target % align)))
}

function gcd(a: number, b: number): number {
  while (b) [a, b] = [b, a % b]
  return a
}

const lcm = (a: number, b: number) => (a / gcd(a, b)) * b

/**
 * Encodes tensors on `threads` threads (the calling thread alone for 1); `close` when done.
 * The encoded storage lives in two reused blocks of memory, taken in turn: what `encode` returns stays
 * valid until the call after next, so a caller writes it out before then (`WriteBehind` keeps one write
 * in flight). Reusing the memory keeps the process flat: buffers shared with workers are freed only when
 * every thread has collected them, which idle workers rarely do.
 */
export class TensorEncoding {
  private readonly pool: EncodePool
  readonly buffers: BufferPool
  private readonly orders = new Map<string, Int32Array>()
  private readonly storage: Array<ArrayBufferLike | undefined> = [undefined, undefined]
  private turn = 0

  /** @param threads encoding threads (workers start now, while the caller plans its output) */
  constructor(readonly threads: number) {
    this.pool = new EncodePool(threads)
    // a task being encoded and one waiting per thread, and reads ahead
    this.buffers = new BufferPool(TASK_BYTES, 3 * threads + 2)
  }

  /**
   * Encode one tensor.
   * @throws InputError QUANT_PRECONDITION for a shape or block size the scheme cannot take, or values it cannot
   *   encode (the first failing chunk in row order); read errors of the source
   */
  async encode(request: EncodeTensorRequest): Promise<EncodedTensor> {
    const {source, name, quant} = request
    const tensor = source.get(name)
    const [rows, cols] = tensor.shape.length === 2 ? (tensor.shape as [number, number]) : [1, shapeSize(tensor.shape)]
    const shape = checkEncodable(quant, request.transpose ? [cols, rows] : tensor.shape)
    const codec = QUANT_SCHEMES[quant.scheme].codec
    const memory = this.storageMemory(codec.storageBytes(shape, quant))
    const tasks = new OrderedTasks()
    try {
      const direct = tensor.encoding === 'plain' && (tensor.dtype === 'F32' || tensor.dtype === 'F16' || tensor.dtype === 'BF16') && !request.transform && !request.transpose
      if (direct) await this.fromStoredRows(request, tensor.dtype as ChunkDtype, shape, memory, tasks)
      else await this.fromFloatRows(request, [rows, cols], shape, memory, tasks)
    } catch (error) {
      // a chunk handed over earlier may have failed first: that is the error one thread would have met
      await tasks.done()
      throw error
    }
    await tasks.done()
    return {scheme: quant.scheme, shape, data: codec.complete(codec.storage(memory, shape, quant), shape, quant)}
  }

  /** Stored F32/F16/BF16 rows straight to the threads. */
  private async fromStoredRows(request: EncodeTensorRequest, dtype: ChunkDtype, shape: readonly [number, number], memory: ArrayBufferLike, tasks: OrderedTasks): Promise<void> {
    const {source, name, quant, permuteHeads} = request
    const [rows, cols] = shape
    const headRows = permuteHeads ? rows / permuteHeads : 1
    const align = lcm(QUANT_SCHEMES[quant.scheme].rowAlignment(cols, quant.blockSize), headRows)
    const step = chunkRows(rows, cols, align, TASK_BYTES / DTYPES[dtype].bytes)
    const rowBytes = cols * DTYPES[dtype].bytes
    for (let r0 = 0; r0 < rows && !tasks.failed; r0 += step) {
      const n = Math.min(step, rows - r0)
      const chunk = await this.acquire(n * rowBytes)
      const bytes = chunk.bytes
      const rowOrder = permuteHeads ? this.rowOrder(n, n / headRows) : undefined
      tasks.add(
        this.hold(chunk, async () => {
          await source.readBytesInto(name, r0 * rowBytes, bytes)
          try {
            await this.pool.run({scheme: quant.scheme, options: quant, shape, memory, startRow: r0, rowCount: n, dtype, bytes, rowOrder})
          } catch (error) {
            // NaN or ±Infinity in the file: refused as reading refuses it (the kernels find it, no pass of its own)
            if (error instanceof InputError && error.code === 'QUANT_NOT_FINITE') assertFiniteData(source.path, name, dtype, bytes, [rows, cols], r0 * cols)
            throw error
          }
        }),
      )
    }
  }

  /** Rows decoded, changed and reordered on this thread, then encoded by the threads as float32. */
  private async fromFloatRows(request: EncodeTensorRequest, [rows, cols]: readonly [number, number], shape: readonly [number, number], memory: ArrayBufferLike, tasks: OrderedTasks): Promise<void> {
    const {source, name, quant, transform, permuteHeads, transpose} = request
    const scheme = QUANT_SCHEMES[quant.scheme]
    const headRows = permuteHeads ? rows / permuteHeads : 1
    // a transposed tensor is changed and transposed whole
    const step = transpose ? rows : chunkRows(rows, cols, lcm(scheme.rowAlignment(cols, quant.blockSize), headRows), ENCODE_CHUNK_ELEMENTS)
    // tasks of whole heads when rows are permuted: the threads read them in llama.cpp's order by index
    const taskRows = chunkRows(shape[0], shape[1], lcm(scheme.rowAlignment(shape[1], quant.blockSize), transpose ? 1 : headRows), TASK_BYTES / 4)
    const read = (r0: number) => (r0 < rows ? source.readRows(name, r0, Math.min(step, rows - r0)) : undefined)
    let next = read(0)
    try {
      for (let r0 = 0; r0 < rows && !tasks.failed; r0 += step) {
        const n = Math.min(step, rows - r0)
        let values = await next!
        next = read(r0 + step)
        if (transform) {
          values = await transform(r0, n, values)
          assertFiniteResult(`write ${request.output ?? source.path}`, name, 'F32', values, r0 * cols)
        }
        if (transpose) values = transposeTyped(values, rows, cols)
        // encoded rows [first, first + count) are in `values` now
        const first = transpose ? 0 : r0
        const count = transpose ? shape[0] : n
        for (let k = 0; k < count && !tasks.failed; k += taskRows) {
          const m = Math.min(taskRows, count - k)
          const chunk = await this.acquire(m * shape[1] * 4)
          const bytes = chunk.bytes
          new Float32Array(bytes.buffer, bytes.byteOffset, m * shape[1]).set(values.subarray(k * shape[1], (k + m) * shape[1]))
          const rowOrder = permuteHeads && !transpose ? this.rowOrder(m, m / headRows) : undefined
          tasks.add(this.hold(chunk, () => this.pool.run({scheme: quant.scheme, options: quant, shape, memory, startRow: first + k, rowCount: m, dtype: 'F32', bytes, rowOrder})))
        }
      }
    } finally {
      // settle the read-ahead even on error, so no read outlives the file
      await next?.catch(() => undefined)
    }
  }

  /** A chunk buffer: from the pool, or a one-off one for a chunk larger than the pool's buffers (rows of millions of elements). */
  private async acquire(bytes: number): Promise<Chunk> {
    if (bytes > this.buffers.bufferBytes) return {bytes: new Uint8Array(this.pool.allocate(bytes)), pooled: false}
    return {bytes: await this.buffers.acquire(bytes), pooled: true}
  }

  /** Run `work` on the chunk, then give its buffer back. */
  private async hold(chunk: Chunk, work: () => Promise<void>): Promise<void> {
    try {
      await work()
    } finally {
      if (chunk.pooled) this.buffers.release(chunk.bytes)
    }
  }

  /** The next of the two storage blocks, grown to `bytes` when smaller. */
  private storageMemory(bytes: number): ArrayBufferLike {
    const i = this.turn
    this.turn = 1 - i
    const have = this.storage[i]
    if (have && have.byteLength >= bytes) return have
    const fresh = this.pool.allocate(bytes)
    this.storage[i] = fresh
    return fresh
  }

  /** `ggufRowOrder(rows, heads)`, kept for the next chunk of the same size. */
  private rowOrder(rows: number, heads: number): Int32Array {
    const key = `${rows}/${heads}`
    let order = this.orders.get(key)
    if (!order) this.orders.set(key, (order = ggufRowOrder(rows, heads)))
    return order
  }

  /** Stop the threads. */
  async close(): Promise<void> {
    await this.pool.close()
  }
}

/** A chunk buffer and whether it goes back to the pool. */
interface Chunk {
  readonly bytes: Uint8Array
  readonly pooled: boolean
}

