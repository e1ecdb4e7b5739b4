import {suite} from 'uvu'
import * as assert from 'uvu/assert'
import {JsonFloat, parseJsonKeepingFloats, stringifyJsonKeepingFloats} from '../../../src/core/formats/json-floats.js'

const test = suite('formats/json-floats')

test('floats written with a fraction or exponent stay floats; integers stay integers; the text round-trips', () => {
  const text = '{\n  "a": 6,\n  "b": 6.0,\n  "c": 1e-05,\n  "d": [1, 2.5, null, true, "x\\"y"],\n  "e": {}\n}'
  const v = parseJsonKeepingFloats(text) as Record<string, unknown>
  assert.is(v.a, 6)
  assert.instance(v.b, JsonFloat)
  assert.is((v.b as JsonFloat).value, 6)
  assert.is((v.c as JsonFloat).value, 1e-5)
  assert.equal(JSON.parse(stringifyJsonKeepingFloats(v)), JSON.parse(text))
  assert.match(stringifyJsonKeepingFloats(v), /"b": 6\.0,\n/)
  assert.match(stringifyJsonKeepingFloats(v), /"a": 6,\n/)
  assert.is(stringifyJsonKeepingFloats({threshold: new JsonFloat(6), n: 6, e: [], o: {}}), '{\n  "threshold": 6.0,\n  "n": 6,\n  "e": [],\n  "o": {}\n}')
})

test('a key named __proto__ is an ordinary key; malformed text is a SyntaxError', () => {
  const v = parseJsonKeepingFloats('{"__proto__": {"x": 1}}') as Record<string, unknown>
  assert.equal(Object.keys(v), ['__proto__'])
  assert.is(({} as Record<string, unknown>).x, undefined)
  for (const bad of ['{', '{"a" 1}', '[1,]', '01', '{"a": 1} x']) assert.throws(() => parseJsonKeepingFloats(bad), SyntaxError, bad)
})

test.run()
