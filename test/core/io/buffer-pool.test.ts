import {suite} from 'uvu'
import * as assert from 'uvu/assert'
import {BufferPool} from '../../../src/core/io/buffer-pool.js'

const test = suite('buffer-pool')

test('a pool gives views of at most its buffer size, and waits when every buffer is out', async () => {
  const pool = new BufferPool(16, 2)
  const a = await pool.acquire(10)
  const b = await pool.acquire(16)
  assert.is(a.byteLength, 10)
  assert.ok(a.buffer instanceof SharedArrayBuffer)
  let third: Uint8Array | undefined
  const waiting = pool.acquire(4).then((v) => (third = v))
  await new Promise((r) => setTimeout(r, 10))
  assert.is(third, undefined)
  pool.release(a)
  await waiting
  assert.is(third!.buffer, a.buffer)
  assert.is(third!.byteLength, 4)
  pool.release(b)
  await assert.not.throws(() => pool.release(third!))
  assert.throws(() => new BufferPool(0, 1), /positive size and count/)
  let tooBig: unknown
  await pool.acquire(17).catch((e) => (tooBig = e))
  assert.instance(tooBig, RangeError)
})

test.run()
