/**
 * What every tensor file reader does the same way: find a tensor's header
 * entry by name, check a byte range against it, and read that range with one
 * positional read that names the file on a system error.
 */
import type {FileHandle} from 'node:fs/promises'
import {DTYPES, DType, firstNonFinite, nonFiniteName, toFloat64} from '../dtype.js'
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
  await readIntoAt(handle, path, position, target)
  return target
}

/** Fill `target` from absolute file offset `position` (a buffer the caller reuses: nothing allocated). */
export async function readIntoAt(handle: FileHandle, path: string, position: number, target: Uint8Array): Promise<void> {
  await withFileContext('read', path, () => readFully(handle, target, position))
}

/** `[row, col]` of element `index` in a tensor of `shape` (row = first dimension). */
function position(index: number, shape: readonly number[]): string {
  if (shape.length < 2) return ''
  const rowElements = shape.slice(1).reduce((a, b) => a * b, 1)
  return ` (row ${Math.floor(index / rowElements)}, offset ${index % rowElements} in the row)`
}

/**
 * Refuse tensor data holding NaN or ±Infinity, checked where it is read (no
 * pass of its own over the file): the data is `dtype` elements stored in
 * `data` (or float32/float64 values decoded from them), the first of which is
 * element `firstElement` of tensor `name` of `shape` in `path`.
 * @throws InputError TENSOR_NOT_FINITE naming the file, the tensor and the first bad element
 */
export function assertFiniteData(path: string, name: string, dtype: DType, data: Uint8Array | Float32Array | Float64Array, shape: readonly number[] = [], firstElement = 0): void {
  const i = firstNonFinite(data instanceof Uint8Array ? dtype : data instanceof Float32Array ? 'F32' : 'F64', data)
  if (i < 0) return
  const size = DTYPES[dtype].bytes
  const value = data instanceof Uint8Array ? toFloat64(dtype, data.subarray(i * size, (i + 1) * size))[0]! : data[i]!
  const index = firstElement + i
  throw new InputError(
    'TENSOR_NOT_FINITE',
    `read ${path}: tensor "${sanitizeName(name)}" holds ${nonFiniteName(value)} at element ${index}${position(index, shape)}; a computation on it would give NaN everywhere`,
  )
}

/**
 * Refuse a null slot (slot 0 of a pack's stacks, what a request without an
 * adapter gets) that is not all zeros.
 * @throws InputError PACK_NULL_SLOT_NOT_ZERO naming the file and the tensor
 */
export function assertNullSlot(path: string, name: string, values: Float32Array): void {
  const i = values.findIndex((v) => v !== 0)
  if (i < 0) return
  throw new InputError(
    'PACK_NULL_SLOT_NOT_ZERO',
    `read ${path}: slot 0 of "${sanitizeName(name)}" holds ${values[i]} at element ${i}; slot 0 is the null adapter, all zeros (requests without an adapter get it)`,
  )
}

/**
 * Refuse computed values holding NaN or ±Infinity before they are written:
 * `data` is the values (float32/float64) or their encoding in `dtype` (an
 * F16 or BF16 encoding turns values past its range into ±Infinity).
 * @param what the output and the step, for the message (`merge ./out`)
 * @throws InputError OUTPUT_NOT_FINITE naming the tensor and the first bad element
 */
export function assertFiniteResult(what: string, name: string, dtype: DType, data: Uint8Array | Float32Array | Float64Array, firstElement = 0): void {
  const i = firstNonFinite(data instanceof Uint8Array ? dtype : data instanceof Float32Array ? 'F32' : 'F64', data)
  if (i < 0) return
  const size = DTYPES[dtype].bytes
  const value = data instanceof Uint8Array ? toFloat64(dtype, data.subarray(i * size, (i + 1) * size))[0]! : data[i]!
  const cause = data instanceof Uint8Array && !Number.isNaN(value) ? ` (past ${dtype}'s range)` : ''
  throw new InputError(
    'OUTPUT_NOT_FINITE',
    `${what}: tensor "${sanitizeName(name)}" would hold ${nonFiniteName(value)} at element ${firstElement + i}${cause}; nothing was written (check the adapters' lora_alpha and the --weight values)`,
  )
}
