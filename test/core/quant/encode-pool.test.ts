import {suite} from 'uvu'
import * as assert from 'uvu/assert'
import {DType, bytesOf, fromFloat, toFloat32} from '../../../src/core/dtype.js'
import {InputError} from '../../../src/core/errors.js'
import {ggufRowOrder, permuteRowsToGguf} from '../../../src/core/models/gguf-names.js'
import {EncodePool} from '../../../src/core/quant/encode-pool.js'
import type {ChunkDtype} from '../../../src/core/quant/encode-task.js'
import {EncodedTensor, QUANT_SCHEMES, QUANT_SCHEME_NAMES, QuantOptions, createEncoder} from '../../../src/core/quant/schemes.js'
import {rejection} from '../../helpers/index.js'
import {normal} from '../../helpers/merge-fixtures.js'

const test = suite('quant/encode-pool')

/** The bytes of every stored part of an encoded tensor, in order (what a file would hold). */
function partBytes(e: EncodedTensor): Uint8Array[] {
  const scheme = QUANT_SCHEMES[e.scheme as keyof typeof QUANT_SCHEMES]
  return scheme.storedParts('w', e as never, 'F16').map((p) => Uint8Array.from(p.data))
}

function options(scheme: QuantOptions['scheme'], extra: Partial<QuantOptions> = {}): QuantOptions {
  return {scheme, blockSize: QUANT_SCHEMES[scheme].defaultBlockSize, doubleQuant: false, ...extra}
}

/** `values` stored as `dtype`, in a SharedArrayBuffer (what the chunk buffers are). */
function sharedStored(values: Float32Array, dtype: ChunkDtype): Uint8Array {
  const bytes = fromFloat(dtype as DType, values)
  const shared = new Uint8Array(new SharedArrayBuffer(bytes.byteLength))
  shared.set(bytes)
  return shared
}

/** Encode a [rows, cols] tensor on `pool` in chunks of `step` rows (all in flight at once). */
async function encodeOnPool(pool: EncodePool, quant: QuantOptions, shape: [number, number], values: Float32Array, dtype: ChunkDtype, step: number, heads?: number): Promise<EncodedTensor> {
  const [rows, cols] = shape
  const codec = QUANT_SCHEMES[quant.scheme].codec
  const memory = pool.allocate(codec.storageBytes(shape, quant))
  const tasks: Array<Promise<void>> = []
  for (let r0 = 0; r0 < rows; r0 += step) {
    const n = Math.min(step, rows - r0)
    const bytes = sharedStored(values.subarray(r0 * cols, (r0 + n) * cols), dtype)
    const rowOrder = heads ? ggufRowOrder(n, (n * heads) / rows) : undefined
    tasks.push(pool.run({scheme: quant.scheme, options: quant, shape, memory, startRow: r0, rowCount: n, dtype, bytes, rowOrder}))
  }
  await Promise.all(tasks)
  return {scheme: quant.scheme, shape, data: codec.complete(codec.storage(memory, shape, quant), shape, quant)}
}

/** The streaming encoder on this thread, on the values as the chunk dtype stores them. */
function reference(quant: QuantOptions, shape: [number, number], values: Float32Array, dtype: ChunkDtype): EncodedTensor {
  const e = createEncoder(quant, shape)
  e.push(toFloat32(dtype, fromFloat(dtype, values)).slice())
  return e.finish()
}

test('every scheme, every chunk dtype: workers write the bytes the streaming encoder writes on one thread', async () => {
  const shape: [number, number] = [48, 160]
  const values = Float32Array.from(normal(48 * 160, 0.05, 'pool'))
  const pool = new EncodePool(3)
  try {
    for (const scheme of QUANT_SCHEME_NAMES) {
      const quant = options(scheme, scheme === 'int4' ? {blockSize: 32} : {})
      // nf4 blocks run over the flattened tensor: chunks start on block boundaries
      const step = QUANT_SCHEMES[scheme].rowAlignment(shape[1], quant.blockSize) * 2
      for (const dtype of ['F16', 'BF16', 'F32'] as const) {
        const got = partBytes(await encodeOnPool(pool, quant, shape, values, dtype, step))
        assert.equal(got, partBytes(reference(quant, shape, values, dtype)), `${scheme} from ${dtype}`)
      }
    }
    const nested = options('nf4', {doubleQuant: true})
    assert.equal(partBytes(await encodeOnPool(pool, nested, shape, values, 'F16', 8)), partBytes(reference(nested, shape, values, 'F16')), 'nf4 double quant')
  } finally {
    await pool.close()
  }
})

test('rows read in llama.cpp q/k order by index equal the rows moved first (permuteRowsToGguf)', async () => {
  const heads = 4
  const shape: [number, number] = [64, 96]
  const values = Float32Array.from(normal(64 * 96, 0.1, 'qk'))
  const order = ggufRowOrder(64, heads)
  const moved = permuteRowsToGguf(values, heads, 96)
  for (let r = 0; r < 64; r++) assert.equal(values.subarray(order[r]! * 96, (order[r]! + 1) * 96), moved.subarray(r * 96, (r + 1) * 96), `row ${r}`)
  const pool = new EncodePool(2)
  try {
    const quant = options('q4_0')
    // chunks of two heads each: the order within a chunk is the chunk's own
    const got = await encodeOnPool(pool, quant, shape, values, 'F16', 32, heads)
    assert.equal(partBytes(got), partBytes(reference(quant, shape, moved, 'F16')))
  } finally {
    await pool.close()
  }
})

test('one thread and several threads give the same bytes; more threads than chunks is fine', async () => {
  const shape: [number, number] = [6, 64]
  const values = Float32Array.from(normal(6 * 64, 0.1, 'few'))
  const quant = options('q8_0')
  const results: Uint8Array[][] = []
  for (const threads of [1, 2, 9]) {
    const pool = new EncodePool(threads)
    try {
      results.push(partBytes(await encodeOnPool(pool, quant, shape, values, 'F16', 1)))
    } finally {
      await pool.close()
    }
  }
  assert.equal(results[1], results[0])
  assert.equal(results[2], results[0])
})

test('a value a scheme cannot encode: the same InputError from a worker as on the calling thread', async () => {
  const shape: [number, number] = [8, 64]
  const values = Float32Array.from(normal(8 * 64, 0.1, 'nan'))
  values[5 * 64 + 7] = Number.NaN
  const messages: string[] = []
  for (const threads of [1, 2]) {
    const pool = new EncodePool(threads)
    try {
      const error = await rejection(encodeOnPool(pool, options('q4_0'), shape, values, 'F32', 2))
      assert.instance(error, InputError)
      assert.is(error.code, 'QUANT_NOT_FINITE')
      messages.push(error.message)
    } finally {
      await pool.close()
    }
  }
  assert.is(messages[0], 'element 327 is NaN: 4-bit schemes cannot encode NaN or infinity')
  assert.is(messages[1], messages[0])
})

test('workers need shared memory; a closed pool refuses work; the thread count is checked', async () => {
  const pool = new EncodePool(2)
  const quant = options('q4_0')
  const task = {scheme: quant.scheme, options: quant, shape: [1, 32] as [number, number], startRow: 0, rowCount: 1, dtype: 'F32' as const}
  try {
    assert.instance(pool.allocate(8), SharedArrayBuffer)
    const error = await rejection(pool.run({...task, memory: new ArrayBuffer(18), bytes: bytesOf(new Float32Array(32))}))
    assert.match(error.message, /SharedArrayBuffer/)
  } finally {
    await pool.close()
  }
  assert.match((await rejection(pool.run({...task, memory: new SharedArrayBuffer(18), bytes: new Uint8Array(new SharedArrayBuffer(128))}))).message, /closed/)
  assert.throws(() => new EncodePool(0), /positive integer/)
})

test.run()
