/**
 * Positional reads and writes that loop until every byte is done. A single
 * read(2)/write(2) may transfer fewer bytes than asked, and Node caps one call
 * at 2 GiB, so large ranges go in chunks. Positions are plain numbers: exact
 * up to 2^53, far past 4 GiB.
 */
import type {FileHandle} from 'node:fs/promises'

/** One call transfers at most this many bytes. */
export const MAX_IO_CHUNK = 1 << 30

/**
 * Fill `target` from `handle` starting at file offset `position`.
 * @throws Error when the file ends first
 */
export async function readFully(handle: FileHandle, target: Uint8Array, position: number): Promise<void> {
  let done = 0
  while (done < target.byteLength) {
    const length = Math.min(MAX_IO_CHUNK, target.byteLength - done)
    const {bytesRead} = await handle.read(target, done, length, position + done)
    if (bytesRead === 0) throw new Error(`unexpected end of file at offset ${position + done}`)
    done += bytesRead
  }
}

/** Write all of `source` at file offset `position`. */
export async function writeFully(handle: FileHandle, source: Uint8Array, position: number): Promise<void> {
  let done = 0
  while (done < source.byteLength) {
    const length = Math.min(MAX_IO_CHUNK, source.byteLength - done)
    const {bytesWritten} = await handle.write(source, done, length, position + done)
    done += bytesWritten
  }
}
