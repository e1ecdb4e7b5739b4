/**
 * The reference's log-probabilities at every scored position, kept between
 * the reference pass and each variant's pass (what llama.cpp's
 * `--kl-divergence-base` file holds). Rows are float32 `[positions, vocab]`
 * per sequence; in memory up to `memoryBytes`, beyond that in a temporary
 * file written once and read back by positional reads (a long text on a
 * large vocabulary holds gigabytes).
 */
import {open} from 'node:fs/promises'
import {withFileContext} from '../errors.js'
import {WorkFolder, createWorkFolder} from '../io/temporaries.js'
import type {FileHandle} from 'node:fs/promises'
import {tmpdir} from 'node:os'
import {join} from 'node:path'

/** Reference rows held in memory before they go to a temporary file. */
export const REFERENCE_MEMORY_BYTES = 512 * 1024 * 1024

/** Per-sequence float32 rows, stored once and read many times. */
export class ReferenceRows {
  private readonly memory = new Map<number, Float32Array>()
  private readonly onDisk = new Map<number, {offset: number; length: number}>()
  private held = 0
  private file: {dir: string; work: WorkFolder; handle: FileHandle; size: number} | undefined

  constructor(private readonly memoryBytes = REFERENCE_MEMORY_BYTES) {}

  /** Store the rows of sequence `index` (the array is kept or copied; do not change it afterwards). */
  async put(index: number, rows: Float32Array): Promise<void> {
    if (this.held + rows.byteLength <= this.memoryBytes) {
      this.memory.set(index, rows)
      this.held += rows.byteLength
      return
    }
    if (!this.file) {
      // a work folder with this process's PID: removed on exit, or by a later run after a SIGKILL
      const work = await createWorkFolder(tmpdir(), 'eval')
      this.file = {dir: work.path, work, handle: await open(join(work.path, 'reference.f32'), 'w+'), size: 0}
    }
    const bytes = new Uint8Array(rows.buffer, rows.byteOffset, rows.byteLength)
    const file = this.file
    await withFileContext('write', join(file.dir, 'reference.f32'), () => file.handle.write(bytes, 0, bytes.length, file.size))
    this.onDisk.set(index, {offset: this.file.size, length: rows.length})
    this.file.size += bytes.length
  }

  /** The rows of sequence `index`. */
  async get(index: number): Promise<Float32Array> {
    const held = this.memory.get(index)
    if (held) return held
    const at = this.onDisk.get(index)
    if (!at || !this.file) throw new RangeError(`no reference rows for sequence ${index}`)
    const rows = new Float32Array(at.length)
    await this.file.handle.read(new Uint8Array(rows.buffer), 0, rows.byteLength, at.offset)
    return rows
  }

  /** Bytes written to the temporary file (0 when everything fit in memory). */
  get spilledBytes(): number {
    return this.file?.size ?? 0
  }

  /** Drop the rows and remove the temporary file. */
  async close(): Promise<void> {
    this.memory.clear()
    if (this.file) {
      await this.file.handle.close()
      await this.file.work.remove()
      this.file = undefined
    }
  }
}
