/**
 * sha256 of byte streams computed on a worker thread, so that hashing what
 * is being copied runs on another core than the copy itself. Chunks backed by
 * a SharedArrayBuffer are hashed in place (no copy); others are copied into
 * the message. At most `maxPendingBytes` may wait in the worker's queue:
 * `update` then returns a promise to await before reading more.
 */
import {createHash} from 'node:crypto'
import {Worker} from 'node:worker_threads'

/** A running sha256 of one stream. */
export interface StreamHash {
  /** Add the next bytes (they must not change until hashed: pass fresh or shared chunks). */
  update(chunk: Uint8Array): Promise<void> | undefined
  /** The lowercase hex digest of everything added. */
  digest(): Promise<string>
}

/** A sha256 computed on the calling thread (for small inputs, where starting a worker costs more than it saves). */
export function inlineHash(): StreamHash {
  const hash = createHash('sha256')
  return {
    update: (chunk) => {
      hash.update(chunk)
      return undefined
    },
    digest: () => Promise.resolve(hash.digest('hex')),
  }
}

/** Bytes allowed in the worker's queue before `update` asks the caller to wait. */
export const HASH_QUEUE_BYTES = 32 * 1024 * 1024

export class BackgroundHasher {
  private readonly worker: Worker
  private nextId = 0
  private pending = 0
  private readonly waiting: Array<() => void> = []
  private readonly digests = new Map<number, {resolve: (hex: string) => void; reject: (e: Error) => void}>()
  private failure: Error | undefined

  constructor(private readonly maxPendingBytes = HASH_QUEUE_BYTES) {
    this.worker = new Worker(new URL('./background-hash-worker.js', import.meta.url))
    this.worker.on('message', (m: {type: 'ack'; bytes: number} | {type: 'digest'; id: number; hex: string}) => {
      if (m.type === 'ack') {
        this.pending -= m.bytes
        if (this.pending <= this.maxPendingBytes) for (const wake of this.waiting.splice(0)) wake()
      } else {
        this.digests.get(m.id)?.resolve(m.hex)
        this.digests.delete(m.id)
      }
    })
    this.worker.on('error', (error) => this.fail(error))
    this.worker.on('exit', (code) => this.fail(new Error(`the hashing worker exited (status ${code})`)))
  }

  private fail(error: Error): void {
    this.failure ??= error
    for (const d of this.digests.values()) d.reject(error)
    this.digests.clear()
    for (const wake of this.waiting.splice(0)) wake()
  }

  /** A new stream. */
  stream(): StreamHash {
    const id = this.nextId++
    return {
      update: (chunk) => {
        if (this.failure) throw this.failure
        this.pending += chunk.byteLength
        this.worker.postMessage({type: 'update', id, chunk})
        if (this.pending <= this.maxPendingBytes) return undefined
        return new Promise<void>((resolve) => this.waiting.push(resolve)).then(() => {
          if (this.failure) throw this.failure
        })
      },
      digest: () => {
        if (this.failure) return Promise.reject(this.failure)
        const result = new Promise<string>((resolve, reject) => this.digests.set(id, {resolve, reject}))
        this.worker.postMessage({type: 'digest', id})
        return result
      },
    }
  }

  /** Stop the worker. */
  async close(): Promise<void> {
    this.worker.removeAllListeners('exit')
    await this.worker.terminate()
  }
}
