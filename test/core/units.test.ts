import {suite} from 'uvu'
import * as assert from 'uvu/assert'
import {UsageError} from '../../src/core/errors.js'
import {formatBytes, parseSize} from '../../src/core/units.js'

const test = suite('units')

test('parses decimal and binary sizes', () => {
  assert.is(parseSize('512MB'), 512e6)
  assert.is(parseSize('4GiB'), 4 * 2 ** 30)
  assert.is(parseSize('1.5 kib'), 1536)
  assert.is(parseSize('1000'), 1000)
  assert.is(parseSize('0'), 0)
  assert.is(parseSize('2TB'), 2e12)
})

for (const bad of ['-1GB', '12XB', 'GB', '', '1..2MB', 'ten']) {
  test(`refuses "${bad}"`, () => {
    try {
      parseSize(bad, '--budget')
      assert.unreachable()
    } catch (error) {
      assert.instance(error, UsageError)
      assert.match((error as Error).message, /^--budget "/)
    }
  })
}

test('formats bytes with binary units', () => {
  assert.is(formatBytes(0), '0 B')
  assert.is(formatBytes(1536), '1.50 KiB')
  assert.is(formatBytes(4 * 2 ** 30), '4.00 GiB')
})

test.run()
