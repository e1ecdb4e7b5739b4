/**
 * What every tensor file reader does the same way: find a tensor's header
 * entry by name, check a byte range against it, and read that range with one
 * positional read that names the file on a system error.
 */
import type {FileHandle} from 'node:fs/promises'
import {InputError, withFileContext} from '../errors.js'
import {readFully} from '../io/positional.js'
import {sanitizeName} from './safetensors-header.js'

/**
 * The header entry of tensor `name`.
 * @throws InputError TENSOR_NOT_FOUND naming the file
 */
export function tensorEntry<T>(tensors: ReadonlyMap<string, T>, path: string, name: string): T {
  const info = tensors.get(name)
  if (info === undefined) throw new InputError('TENSOR_NOT_FOUND', `read ${path}: no tensor named "${sanitizeName(name)}"`)
  return info
}

/**
 * The end of the byte range `[begin, end)` of a tensor of `byteLength` bytes (`end` defaults to the whole tensor).
 * @throws RangeError when the range is not inside the tensor
 */
export function byteRangeEnd(name: string, byteLength: number, begin: number, end = byteLength): number {
  if (!(begin >= 0 && begin <= end && end <= byteLength)) throw new RangeError(`byte range [${begin}, ${end}) is outside tensor "${name}" (${byteLength} bytes)`)
  return end
}

/** `length` bytes at absolute file offset `position`, in a fresh buffer. */
export async function readAt(handle: FileHandle, path: string, position: number, length: number): Promise<Uint8Array> {
  const target = new Uint8Array(length)
  await withFileContext('read', path, () => readFully(handle, target, position))
  return target
}
