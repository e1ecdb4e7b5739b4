/**
 * Reading one adapter's safetensors file for packing: once, front to back,
 * in chunks, handing every chunk to a hash and each LoRA tensor to a sink as
 * soon as its bytes are in. Opening the file and reading its first chunk
 * start as soon as the reader is created, and each next chunk is read while
 * the current one is placed, so reading overlaps the work. Chunks come from
 * a `BufferPool` (shared memory a hashing worker reads without a copy) and go
 * back to it once hashed and written: memory is the pool, plus a tensor
 * that spans chunks.
 */
import type {FileHandle} from 'node:fs/promises'
import type {DType} from '../dtype.js'
import {InputError, describeSystemError} from '../errors.js'
import type {StreamHash} from '../io/background-hash.js'
import type {BufferPool} from '../io/buffer-pool.js'
import {readFully} from '../io/positional.js'
import {openRegularFile} from '../io/regular-file.js'
import type {PackModuleEntry} from '../formats/pack-manifest.js'

/** Bytes read from a source file at a time. */
export const SOURCE_CHUNK_BYTES = 8 * 1024 * 1024
/** Chunk buffers in a packing pool: one being placed, one read ahead, the next file's first, and some being hashed or written. */
export const SOURCE_CHUNK_COUNT = 6

/** One LoRA tensor of a source file. */
export interface SourcePiece {
  /** Absolute byte range in the source file. */
  readonly begin: number
  readonly end: number
  readonly module: PackModuleEntry
  readonly role: 'A' | 'B'
  /** The tensor's name in the source file. */
  readonly tensor: string
  /** The adapter's rank on this module. */
  readonly r: number
  /** The source dtype. */
  readonly dtype: DType
}

/** A source file as planned from its header. */
export interface SourceFile {
  readonly path: string
  readonly size: number
  readonly mtimeMs: number
  /** Sorted by `begin`, not overlapping. */
  readonly pieces: readonly SourcePiece[]
}

/** Receives each piece's bytes; may return a promise (a write), which `copy` keeps bounded. */
export type PieceSink = (piece: SourcePiece, bytes: Uint8Array) => Promise<void> | void

const ignore = () => undefined

export class SourceReader {
  private readonly handle: Promise<FileHandle>
  private next: Promise<Uint8Array> | undefined

  private constructor(
    readonly source: SourceFile,
    private readonly pool: BufferPool,
  ) {
    this.handle = this.openChecked()
    this.handle.catch(ignore)
    this.next = this.readAt(0)
  }

  /** Open `source` and start reading its first chunk into a buffer from `pool`. */
  static start(source: SourceFile, pool: BufferPool): SourceReader {
    return new SourceReader(source, pool)
  }

  private changed(what: string): InputError {
    return new InputError('PACK_SOURCE_CHANGED', `read ${this.source.path}: the file changed while packing (${what}); pack again when nothing writes to it`)
  }

  private async openChecked(): Promise<FileHandle> {
    const {handle} = await openRegularFile(this.source.path)
    const info = await handle.stat()
    if (info.size !== this.source.size || info.mtimeMs !== this.source.mtimeMs) {
      await handle.close()
      throw this.changed(info.size !== this.source.size ? `${this.source.size} → ${info.size} bytes` : 'modified since its header was read')
    }
    return handle
  }

  private readAt(position: number): Promise<Uint8Array> | undefined {
    if (position >= this.source.size) return undefined
    const read = this.handle.then(async (h) => {
      const chunk = await this.pool.acquire(Math.min(this.pool.bufferBytes, this.source.size - position))
      try {
        await readFully(h, chunk, position)
      } catch (error) {
        this.pool.release(chunk)
        const described = describeSystemError(error, 'read', this.source.path)
        throw described instanceof InputError ? described : this.changed('it ended early')
      }
      return chunk
    })
    read.catch(ignore)
    return read
  }

  /**
   * Read the whole file, feeding every chunk to `hash` and each piece to `sink`.
   * @param after a promise the sink's writes of this file wait behind (the previous file's last writes)
   * @returns a promise for the sink's last pending writes
   */
  async copy(sink: PieceSink, hash: StreamHash, after: Promise<void> = Promise.resolve()): Promise<{done: Promise<void>}> {
    const {pieces, size} = this.source
    const partial = new Map<SourcePiece, Uint8Array>()
    let inflight = after
    let index = 0
    let held: Uint8Array | undefined // a chunk not yet handed back to the pool
    try {
      for (let pos = 0; pos < size; ) {
        const chunk = (held = await this.next!)
        const end = pos + chunk.byteLength
        this.next = this.readAt(end)
        const hashing = hash.update(chunk)
        const writes: Array<Promise<void> | void> = []
        while (index < pieces.length && pieces[index]!.begin < end) {
          const piece = pieces[index]!
          if (piece.begin >= pos && piece.end <= end) {
            writes.push(sink(piece, chunk.subarray(piece.begin - pos, piece.end - pos)))
            index++
            continue
          }
          let buffer = partial.get(piece)
          if (!buffer) partial.set(piece, (buffer = new Uint8Array(piece.end - piece.begin)))
          const from = Math.max(piece.begin, pos)
          const to = Math.min(piece.end, end)
          buffer.set(chunk.subarray(from - pos, to - pos), from - piece.begin)
          if (piece.end > end) break
          partial.delete(piece)
          writes.push(sink(piece, buffer))
          index++
        }
        const these = Promise.all(writes).then(ignore)
        these.catch(ignore)
        // the chunk goes back to the pool once hashed and written
        void Promise.allSettled([these, hashing]).then(() => this.pool.release(chunk))
        held = undefined
        await inflight // at most two chunks' writes in flight
        inflight = these
        pos = end
      }
    } catch (error) {
      if (held) this.pool.release(held)
      await inflight.catch(ignore)
      throw error
    }
    return {done: inflight}
  }

  /** Close the file (also after an error or without `copy`). */
  async close(): Promise<void> {
    const unread = await this.next?.catch(ignore)
    if (unread) this.pool.release(unread)
    const handle = await this.handle.catch(ignore)
    await handle?.close()
  }
}
