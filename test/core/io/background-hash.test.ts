import {createHash} from 'node:crypto'
import {suite} from 'uvu'
import * as assert from 'uvu/assert'
import {BackgroundHasher, inlineHash} from '../../../src/core/io/background-hash.js'

const test = suite('background-hash')

test('sha256 on the worker equals sha256 here, for interleaved streams of shared and plain chunks', async () => {
  const hasher = new BackgroundHasher()
  try {
    const chunks = [0, 1, 2].map((k) => {
      const c = new Uint8Array(new SharedArrayBuffer(1000 + k))
      for (let i = 0; i < c.length; i++) c[i] = (i * 7 + k) & 0xff
      return c
    })
    const plain = Uint8Array.from([1, 2, 3])
    const s1 = hasher.stream()
    const s2 = hasher.stream()
    const local = inlineHash()
    await Promise.all([s1.update(chunks[0]!), s2.update(plain), s1.update(chunks[1]!), s1.update(chunks[2]!)])
    for (const c of chunks) local.update(c)
    const expected = createHash('sha256').update(chunks[0]!).update(chunks[1]!).update(chunks[2]!).digest('hex')
    assert.is(await s1.digest(), expected)
    assert.is(await local.digest(), expected)
    assert.is(await s2.digest(), createHash('sha256').update(plain).digest('hex'))
  } finally {
    await hasher.close()
  }
})

test.run()
