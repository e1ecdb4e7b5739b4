/**
 * Stored bytes copied unchanged (a float tensor kept as it is) through
 * reusable buffers, several reads and writes in flight: nothing is
 * allocated per chunk, and memory stays at the pool's few buffers.
 */
import type {BufferPool} from '../io/buffer-pool.js'
import type {ModelReader} from './model-reader.js'
import {OrderedTasks} from './ordered-tasks.js'

/**
 * Copy bytes `[0, size)` of stored tensor `stored` to `sink(byteOffset, data)`.
 * @throws the first read or write error (after every chunk in flight has finished)
 */
export async function copyStored(source: ModelReader, stored: string, size: number, sink: (byteOffset: number, data: Uint8Array) => Promise<void>, buffers: BufferPool): Promise<void> {
  const tasks = new OrderedTasks()
  try {
    for (let at = 0; at < size && !tasks.failed; at += buffers.bufferBytes) {
      const bytes = await buffers.acquire(Math.min(buffers.bufferBytes, size - at))
      const copy = async () => {
        try {
          await source.readBytesInto(stored, at, bytes)
          await sink(at, bytes)
        } finally {
          buffers.release(bytes)
        }
      }
      tasks.add(copy())
    }
  } finally {
    await tasks.settled()
  }
  await tasks.done()
}

/** Bytes per copy buffer. */
export const COPY_BUFFER_BYTES = 4 << 20
/** Copy buffers (reads and writes in flight). */
export const COPY_BUFFERS = 4
