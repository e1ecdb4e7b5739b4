/**
 * A strict JSON parser for hostile headers. Unlike `JSON.parse`, it
 * - reports a key repeated in one object (JSON.parse silently keeps the last),
 * - builds objects as `Map`s, so a key such as `__proto__` is just a key,
 * - bounds nesting depth, so a deep input cannot overflow the stack.
 */

export type JsonValue = null | boolean | number | string | JsonValue[] | JsonObject
export type JsonObject = Map<string, JsonValue>

/** Nesting deeper than this is refused (a safetensors header needs 4 levels). */
export const MAX_JSON_DEPTH = 64

export class JsonSyntaxError extends Error {
  constructor(
    message: string,
    readonly position: number,
  ) {
    super(message)
  }
}

/** Parse `text` as one JSON value; throws `JsonSyntaxError` with a short reason. */
export function parseStrictJson(text: string): JsonValue {
  const parser = new Parser(text)
  parser.skipWhitespace()
  const value = parser.value(0)
  parser.skipWhitespace()
  if (parser.pos !== text.length) parser.fail('unexpected text after the JSON value')
  return value
}

class Parser {
  pos = 0
  constructor(private readonly text: string) {}

  fail(reason: string): never {
    throw new JsonSyntaxError(`${reason} at offset ${this.pos}`, this.pos)
  }

  skipWhitespace(): void {
    const t = this.text
    while (this.pos < t.length) {
      const c = t.charCodeAt(this.pos)
      if (c === 0x20 || c === 0x0a || c === 0x0d || c === 0x09) this.pos++
      else break
    }
  }

  value(depth: number): JsonValue {
    if (depth > MAX_JSON_DEPTH) this.fail(`nesting deeper than ${MAX_JSON_DEPTH}`)
    const c = this.text[this.pos]
    if (c === '{') return this.object(depth)
    if (c === '[') return this.array(depth)
    if (c === '"') return this.string()
    if (c === 't') return this.literal('true', true)
    if (c === 'f') return this.literal('false', false)
    if (c === 'n') return this.literal('null', null)
    if (c === '-' || (c !== undefined && c >= '0' && c <= '9')) return this.number()
    return this.fail(c === undefined ? 'unexpected end of JSON' : `unexpected character ${JSON.stringify(c)}`)
  }

  literal<T>(word: string, value: T): T {
    if (this.text.startsWith(word, this.pos)) {
      this.pos += word.length
      return value
    }
    return this.fail('invalid literal')
  }

  number(): number {
    const match = /^-?(?:0|[1-9]\d*)(?:\.\d+)?(?:[eE][+-]?\d+)?/.exec(this.text.slice(this.pos, this.pos + 400))
    if (!match) this.fail('invalid number')
    this.pos += match[0].length
    return Number(match[0])
  }

  string(): string {
    const t = this.text
    this.pos++ // opening quote
    let out = ''
    let start = this.pos
    for (;;) {
      if (this.pos >= t.length) this.fail('unterminated string')
      const c = t.charCodeAt(this.pos)
      if (c === 0x22) {
        out += t.slice(start, this.pos)
        this.pos++
        return out
      }
      if (c < 0x20) this.fail('control character in string')
      if (c === 0x5c) {
        out += t.slice(start, this.pos)
        const e = t[this.pos + 1]
        const simple: Record<string, string> = {'"': '"', '\\': '\\', '/': '/', b: '\b', f: '\f', n: '\n', r: '\r', t: '\t'}
        if (e !== undefined && Object.prototype.hasOwnProperty.call(simple, e)) {
          out += simple[e]
          this.pos += 2
        } else if (e === 'u') {
          const hex = t.slice(this.pos + 2, this.pos + 6)
          if (!/^[0-9a-fA-F]{4}$/.test(hex)) this.fail('invalid \\u escape')
          out += String.fromCharCode(Number.parseInt(hex, 16))
          this.pos += 6
        } else {
          this.fail('invalid escape')
        }
        start = this.pos
      } else {
        this.pos++
      }
    }
  }

  array(depth: number): JsonValue[] {
    this.pos++
    const out: JsonValue[] = []
    this.skipWhitespace()
    if (this.text[this.pos] === ']') {
      this.pos++
      return out
    }
    for (;;) {
      this.skipWhitespace()
      out.push(this.value(depth + 1))
      this.skipWhitespace()
      const c = this.text[this.pos]
      if (c === ',') this.pos++
      else if (c === ']') {
        this.pos++
        return out
      } else this.fail("expected ',' or ']'")
    }
  }

  object(depth: number): JsonObject {
    this.pos++
    const out: JsonObject = new Map()
    this.skipWhitespace()
    if (this.text[this.pos] === '}') {
      this.pos++
      return out
    }
    for (;;) {
      this.skipWhitespace()
      if (this.text[this.pos] !== '"') this.fail('expected a string key')
      const keyPos = this.pos
      const key = this.string()
      if (out.has(key)) {
        this.pos = keyPos
        this.fail(`key ${JSON.stringify(key)} appears twice`)
      }
      this.skipWhitespace()
      if (this.text[this.pos] !== ':') this.fail("expected ':'")
      this.pos++
      this.skipWhitespace()
      out.set(key, this.value(depth + 1))
      this.skipWhitespace()
      const c = this.text[this.pos]
      if (c === ',') this.pos++
      else if (c === '}') {
        this.pos++
        return out
      } else this.fail("expected ',' or '}'")
    }
  }
}

/** Convert a parsed value to plain JS (objects with a null prototype), for display or JSON output. */
export function toPlainJson(value: JsonValue): unknown {
  if (value instanceof Map) {
    const out: Record<string, unknown> = Object.create(null)
    for (const [k, v] of value) out[k] = toPlainJson(v)
    return out
  }
  if (Array.isArray(value)) return value.map(toPlainJson)
  return value
}
