/**
 * sha256 of byte streams computed on a worker thread, so that hashing what
 * is being copied runs on another core than the copy itself. Chunks backed by
 * a SharedArrayBuffer are hashed in place (no copy; others are copied into
 * the message). `update` returns a promise that resolves once the worker has
 * hashed the chunk, after which the chunk may be reused.
 */
import {createHash} from 'node:crypto'
import {Worker} from 'node:worker_threads'

/** A running sha256 of one stream. */
export interface StreamHash {
  /** Add the next bytes; when it returns a promise, the bytes must not change until it resolves. */
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

type Reply = {type: 'ack'; seq: number} | {type: 'digest'; seq: number; hex: string}

export class BackgroundHasher {
  private readonly worker: Worker
  private nextId = 0
  private nextSeq = 0
  private readonly replies = new Map<number, {resolve: (value: string) => void; reject: (e: Error) => void}>()
  private failure: Error | undefined

  constructor() {
    this.worker = new Worker(new URL('./background-hash-worker.js', import.meta.url))
    this.worker.on('message', (m: Reply) => {
      const reply = this.replies.get(m.seq)
      this.replies.delete(m.seq)
      reply?.resolve(m.type === 'digest' ? m.hex : '')
    })
    this.worker.on('error', (error) => this.fail(error))
    this.worker.on('exit', (code) => this.fail(new Error(`the hashing worker exited (status ${code})`)))
  }

  private fail(error: Error): void {
    this.failure ??= error
    for (const r of this.replies.values()) r.reject(error)
    this.replies.clear()
  }

  private ask(message: Record<string, unknown>): Promise<string> {
    if (this.failure) return Promise.reject(this.failure)
    const seq = this.nextSeq++
    const reply = new Promise<string>((resolve, reject) => this.replies.set(seq, {resolve, reject}))
    this.worker.postMessage({...message, seq})
    return reply
  }

  /** A new stream. */
  stream(): StreamHash {
    const id = this.nextId++
    return {
      update: (chunk) => this.ask({type: 'update', id, chunk}).then(() => undefined),
      digest: () => this.ask({type: 'digest', id}),
    }
  }

  /** Stop the worker. */
  async close(): Promise<void> {
    this.worker.removeAllListeners('exit')
    await this.worker.terminate()
  }
}
