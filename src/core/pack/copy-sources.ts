/**
 * The second pass of `lora pack`: every adapter file read once, front to
 * back, hashed, and its blocks put into their slots of the preallocated
 * output. Slots are gathered in batches (`SlotBatch`) written with one write
 * per tensor; a slot larger than a batch goes straight from the read chunks.
 * Reads of the next file overlap the work on this one, hashing may run on a
 * worker thread, and finished data is flushed to disk in the background
 * while copying goes on. Memory: the chunk pool and two batches.
 */
import type {SafetensorsWriter} from '../formats/safetensors-writer.js'
import {assertFiniteData} from '../formats/tensor-bytes.js'
import {BackgroundHasher, inlineHash} from '../io/background-hash.js'
import {BufferPool} from '../io/buffer-pool.js'
import type {ProgressCallback} from '../progress.js'
import type {PackManifest} from '../formats/pack-manifest.js'
import type {AdapterHeader} from './pack-plan.js'
import type {SourceLayout} from './read-headers.js'
import {SlotBatch, slotBytes, writeSlotBlock} from './slot-batch.js'
import {PieceSink, SOURCE_CHUNK_BYTES, SOURCE_CHUNK_COUNT, SourceFile, SourcePiece, SourceReader} from './source-reader.js'

/** Slots are gathered up to this many bytes and written with one write per tensor; two batches at most are in memory. */
export const PACK_BATCH_BYTES = 16 * 1024 * 1024

export interface CopySourcesOptions {
  /** Bytes of slots gathered before one write per tensor (default `PACK_BATCH_BYTES`). */
  batchBytes?: number
  /** Bytes read from a source file at a time (default `SOURCE_CHUNK_BYTES`). */
  chunkBytes?: number
  hashInWorker?: boolean
  onProgress?: ProgressCallback
}

/** The LoRA tensors of each source, as pieces in file order with their target module. */
export function sourceFiles(manifest: PackManifest, headers: readonly AdapterHeader[], sources: readonly SourceLayout[]): SourceFile[] {
  const moduleByName = new Map(manifest.modules.map((m) => [m.name, m]))
  return headers.map((header, i) => {
    const src = sources[i]!
    const pieces: SourcePiece[] = []
    header.modules.forEach((m, k) => {
      const module = moduleByName.get(m.name)!
      const {a, b} = src.ranges[k]!
      pieces.push({begin: a[0], end: a[1], module, role: 'A', tensor: m.aKey, r: m.r, dtype: m.dtype}, {begin: b[0], end: b[1], module, role: 'B', tensor: m.bKey, r: m.r, dtype: m.dtype})
    })
    return {path: src.path, size: src.size, mtimeMs: src.mtimeMs, pieces: pieces.sort((x, y) => x.begin - y.begin)}
  })
}

/**
 * Copy every source's A and B (`files[k]`, from `sourceFiles`) into slot k + 1 of the stacks `writer` holds.
 * @returns the sha256 of each source file, in order
 * @throws InputError when a source changed since its header was read
 */
export async function copySources(writer: SafetensorsWriter, manifest: PackManifest, files: readonly SourceFile[], options: CopySourcesOptions = {}): Promise<string[]> {
  const dtype = manifest.dtype
  const moduleByName = new Map(manifest.modules.map((m) => [m.name, m]))
  const N = files.length
  const perSlot = slotBytes(manifest.modules, dtype)
  const batchBytes = options.batchBytes ?? PACK_BATCH_BYTES
  const direct = perSlot > batchBytes
  const batchSlots = direct ? 1 : Math.max(1, Math.floor(batchBytes / perSlot))
  // two arenas, alternating: one being written while the next batch fills the other
  const arenaBytes = direct ? 0 : Math.min(batchSlots, N) * perSlot
  const arenas = [new Uint8Array(arenaBytes), new Uint8Array(arenaBytes)]
  let batches = 0
  let batch = new SlotBatch(moduleByName, dtype, 1, Math.min(batchSlots, N), arenas[0]!)
  let flushing: Promise<void> = Promise.resolve()
  let writes: Promise<void> = Promise.resolve()
  const pool = new BufferPool(options.chunkBytes ?? SOURCE_CHUNK_BYTES, SOURCE_CHUNK_COUNT)
  let next: SourceReader | undefined = N > 0 ? SourceReader.start(files[0]!, pool) : undefined
  const hasher = options.hashInWorker ? new BackgroundHasher() : undefined
  // the disk writes what is copied while copying goes on, so the final flush has little left (one sync at a time)
  let syncing: Promise<void> | undefined
  const syncInBackground = () => {
    if (syncing) return
    syncing = writer.sync().finally(() => (syncing = undefined))
    syncing.catch(() => undefined)
  }
  try {
    const digests: Array<Promise<string>> = []
    for (let i = 0; i < N; i++) {
      const slot = i + 1
      const reader = next!
      next = i + 1 < N ? SourceReader.start(files[i + 1]!, pool) : undefined
      try {
        const place: PieceSink = direct
          ? (p, bytes) => writeSlotBlock(writer, p.module, p.role, slot, p.r, p.dtype, dtype, bytes)
          : (p, bytes) => batch.place(p.module.name, p.role, slot, p.r, p.dtype, bytes)
        // every value is checked as it passes (no pass of its own over the file)
        // (a refusal is a rejected write, so the chunks in flight settle before the pack is aborted)
        const sink: PieceSink = (p, bytes) => {
          try {
            assertFiniteData(reader.source.path, p.tensor, p.dtype, bytes, p.role === 'A' ? [p.r, p.module.in] : [p.module.out, p.r])
          } catch (error) {
            return Promise.reject(error)
          }
          return place(p, bytes)
        }
        const hash = hasher ? hasher.stream() : inlineHash()
        const copied = await reader.copy(sink, hash, writes)
        const digest = hash.digest()
        digest.catch(() => undefined)
        digests.push(digest)
        writes = copied.done
        if (direct) writes.then(syncInBackground, () => undefined)
      } finally {
        await reader.close()
      }
      if (!direct && slot === batch.start + batch.count - 1) {
        await flushing // at most two batches in memory: one being written, one being filled
        flushing = batch.flush(writer)
        flushing.then(syncInBackground, () => undefined)
        batch = new SlotBatch(moduleByName, dtype, slot + 1, Math.min(batchSlots, N - slot), arenas[++batches % 2]!)
      }
      options.onProgress?.({stage: 'adapters', done: slot, total: N})
    }
    await flushing
    await writes
    await syncing
    return await Promise.all(digests)
  } catch (error) {
    await next?.close()
    await Promise.allSettled([flushing, writes, syncing])
    throw error
  } finally {
    await hasher?.close()
  }
}
