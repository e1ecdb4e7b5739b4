/**
 * Threads that encode row chunks (`EncodeTask`) into shared memory: one
 * worker per thread asked for (`os.availableParallelism()` by default in the
 * commands), or the calling thread alone for `threads: 1`. Chunks and the
 * encoded storage live in SharedArrayBuffers, so nothing is copied between
 * threads; a task resolves once its rows are encoded. Each task goes to the
 * worker with the fewest tasks outstanding. A worker that dies fails every
 * task it held and the pool.
 */
import {Worker} from 'node:worker_threads'
import {ChunkEncoder, EncodeTask, SerializedError, deserializeError} from './encode-task.js'

type Reply = {id: number; error?: SerializedError}

interface Pending {
  readonly resolve: () => void
  readonly reject: (error: Error) => void
}

class EncodeWorker {
  readonly worker: Worker
  readonly pending = new Map<number, Pending>()

  constructor(onFailure: (error: Error) => void) {
    this.worker = new Worker(new URL('./encode-worker.js', import.meta.url))
    this.worker.on('message', (m: Reply) => {
      const p = this.pending.get(m.id)
      this.pending.delete(m.id)
      if (m.error) p?.reject(deserializeError(m.error))
      else p?.resolve()
    })
    this.worker.on('error', (error) => onFailure(error))
    this.worker.on('exit', (code) => onFailure(new Error(`an encoding worker exited (status ${code})`)))
  }

  failAll(error: Error): void {
    for (const p of this.pending.values()) p.reject(error)
    this.pending.clear()
  }
}

/** Encodes chunks on `threads` threads. */
export class EncodePool {
  private readonly workers: EncodeWorker[]
  private readonly inline: ChunkEncoder | undefined
  private nextId = 0
  private failure: Error | undefined
  private closed = false

  /**
   * @param threads encoding threads: 1 encodes on the calling thread, more starts that many workers
   * @throws RangeError for a thread count that is not a positive integer
   */
  constructor(readonly threads: number) {
    if (!(Number.isSafeInteger(threads) && threads >= 1)) throw new RangeError(`encoding threads must be a positive integer (got ${threads})`)
    this.inline = threads === 1 ? new ChunkEncoder() : undefined
    this.workers = threads === 1 ? [] : Array.from({length: threads}, () => new EncodeWorker((error) => this.fail(error)))
  }

  private fail(error: Error): void {
    if (this.closed) return
    this.failure ??= error
    for (const w of this.workers) w.failAll(this.failure)
  }

  /** Memory that every encoding thread sees: a SharedArrayBuffer with workers, an ArrayBuffer on the calling thread. */
  allocate(bytes: number): ArrayBufferLike {
    return this.inline ? new ArrayBuffer(bytes) : new SharedArrayBuffer(bytes)
  }

  /**
   * Encode one chunk; resolves when its bytes are in `task.memory`.
   * @throws InputError as the scheme's encoder (rebuilt from the worker's), Error when a worker died
   */
  async run(task: EncodeTask): Promise<void> {
    if (this.closed) throw new Error('the encoding pool is closed')
    if (this.failure) throw this.failure
    if (this.inline) return this.inline.run(task)
    if (!(task.memory instanceof SharedArrayBuffer) || !(task.bytes.buffer instanceof SharedArrayBuffer)) {
      throw new RangeError('encoding workers need the chunk and the storage in SharedArrayBuffers')
    }
    let worker = this.workers[0]!
    for (const w of this.workers) if (w.pending.size < worker.pending.size) worker = w
    const id = this.nextId++
    const done = new Promise<void>((resolve, reject) => worker.pending.set(id, {resolve, reject}))
    worker.worker.postMessage({id, task})
    return done
  }

  /** Stop the workers (tasks still outstanding are failed). */
  async close(): Promise<void> {
    if (this.closed) return
    this.closed = true
    const error = new Error('the encoding pool was closed')
    for (const w of this.workers) {
      w.worker.removeAllListeners('exit')
      w.failAll(error)
    }
    await Promise.all(this.workers.map((w) => w.worker.terminate()))
  }
}
