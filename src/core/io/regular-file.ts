/**
 * Opening an input file without hanging on what is not one. A plain
 * `open()` of a FIFO blocks until a writer appears (forever, for an
 * `adapter_model.safetensors` that is a named pipe), and a character device
 * never ends (`/dev/zero`). Inputs are opened non-blocking, checked with
 * `fstat` on the open descriptor (no race with a swapped path), and refused
 * unless they are regular files; reads of a regular file ignore the flag.
 */
import {constants, fstatSync, openSync, readSync, closeSync} from 'node:fs'
import {open} from 'node:fs/promises'
import type {FileHandle} from 'node:fs/promises'
import type {Stats} from 'node:fs'
import {InputError, withFileContext, describeSystemError} from '../errors.js'

const FLAGS = constants.O_RDONLY | constants.O_NONBLOCK

/** What a non-regular file is, in words. */
function kindOf(info: Stats): string {
  if (info.isDirectory()) return 'a folder'
  if (info.isFIFO()) return 'a named pipe (FIFO)'
  if (info.isCharacterDevice()) return 'a character device'
  if (info.isBlockDevice()) return 'a block device'
  if (info.isSocket()) return 'a socket'
  return 'not a regular file'
}

function notAFile(action: string, path: string, info: Stats): InputError {
  return new InputError('NOT_A_FILE', `${action} ${path}: ${kindOf(info)}, not a regular file`)
}

/**
 * Open `path` for reading, refusing anything but a regular file at once.
 * @throws InputError NOT_A_FILE, or the system error naming the path
 */
export async function openRegularFile(path: string, action = 'read'): Promise<{handle: FileHandle; size: number}> {
  const handle = await withFileContext(action, path, () => open(path, FLAGS))
  try {
    const info = await handle.stat()
    if (!info.isFile()) throw notAFile(action, path, info)
    return {handle, size: info.size}
  } catch (error) {
    await handle.close()
    throw describeSystemError(error, action, path)
  }
}

/**
 * The whole text of a regular file of at most `maxBytes` bytes (`tooLarge`
 * makes the error for a larger one).
 * @throws InputError NOT_A_FILE, the error of `tooLarge`, or the system error naming the path
 */
export async function readRegularText(path: string, maxBytes: number, tooLarge: (size: number) => Error, action = 'read'): Promise<string> {
  const {handle, size} = await openRegularFile(path, action)
  try {
    if (size > maxBytes) throw tooLarge(size)
    return await withFileContext(action, path, () => handle.readFile('utf8'))
  } finally {
    await handle.close()
  }
}

/** `readRegularText` for synchronous callers. */
export function readRegularTextSync(path: string, maxBytes: number, tooLarge: (size: number) => Error, action = 'read'): string {
  let fd: number
  try {
    fd = openSync(path, FLAGS)
  } catch (error) {
    throw describeSystemError(error, action, path)
  }
  try {
    const info = fstatSync(fd)
    if (!info.isFile()) throw notAFile(action, path, info)
    if (info.size > maxBytes) throw tooLarge(info.size)
    const bytes = Buffer.alloc(info.size)
    let done = 0
    while (done < bytes.length) {
      const n = readSync(fd, bytes, done, bytes.length - done, done)
      if (n === 0) break
      done += n
    }
    return bytes.subarray(0, done).toString('utf8')
  } catch (error) {
    throw describeSystemError(error, action, path)
  } finally {
    closeSync(fd)
  }
}
