/**
 * JSON that keeps the difference between `6` and `6.0`. JavaScript numbers
 * have no such difference, but Python's `json` does, and transformers checks
 * it: `BitsAndBytesConfig` raises `TypeError: llm_int8_threshold must be a
 * float` for `6`. Config files `lora` edits (config.json of quantized models)
 * are parsed here with every number written with a fraction or exponent kept
 * as a `JsonFloat`, and written back with `.0` for integral floats, the
 * way Python's `json.dumps` writes them.
 */

/** A number that is a float in the JSON (written `6.0`, not `6`). */
export class JsonFloat {
  constructor(readonly value: number) {
    if (!Number.isFinite(value)) throw new RangeError(`JSON cannot hold ${value}`)
  }

  toJSON(): number {
    return this.value
  }
}

/** Parse JSON text; numbers written with `.` or an exponent become `JsonFloat`s, objects plain objects. */
export function parseJsonKeepingFloats(text: string): unknown {
  let pos = 0
  const fail = (why: string): never => {
    throw new SyntaxError(`${why} at offset ${pos}`)
  }
  const ws = () => {
    while (pos < text.length && ' \t\n\r'.includes(text[pos]!)) pos++
  }
  const value = (depth: number): unknown => {
    if (depth > 512) fail('nesting too deep')
    ws()
    const c = text[pos]
    if (c === '{') {
      pos++
      const out: Record<string, unknown> = {}
      ws()
      if (text[pos] === '}') return pos++, out
      for (;;) {
        ws()
        if (text[pos] !== '"') fail('expected a key')
        const key = string()
        ws()
        if (text[pos++] !== ':') fail('expected ":"')
        Object.defineProperty(out, key, {value: value(depth + 1), enumerable: true, writable: true, configurable: true})
        ws()
        if (text[pos] === ',') pos++
        else if (text[pos] === '}') return pos++, out
        else fail('expected "," or "}"')
      }
    }
    if (c === '[') {
      pos++
      const out: unknown[] = []
      ws()
      if (text[pos] === ']') return pos++, out
      for (;;) {
        out.push(value(depth + 1))
        ws()
        if (text[pos] === ',') pos++
        else if (text[pos] === ']') return pos++, out
        else fail('expected "," or "]"')
      }
    }
    if (c === '"') return string()
    for (const [word, v] of [['true', true], ['false', false], ['null', null]] as const) {
      if (text.startsWith(word, pos)) return (pos += word.length), v
    }
    const m = /^-?(0|[1-9]\d*)(\.\d+)?([eE][+-]?\d+)?/.exec(text.slice(pos, pos + 400))
    if (!m) return fail('unexpected character')
    pos += m[0].length
    const n = Number(m[0])
    return m[2] !== undefined || m[3] !== undefined ? new JsonFloat(n) : n
  }
  const string = (): string => {
    const start = pos
    pos++
    while (pos < text.length && text[pos] !== '"') pos += text[pos] === '\\' ? 2 : 1
    if (pos >= text.length) fail('unterminated string')
    pos++
    return JSON.parse(text.slice(start, pos)) as string
  }
  const out = value(0)
  ws()
  if (pos !== text.length) fail('unexpected text after the JSON value')
  return out
}

function floatText(v: number): string {
  const s = JSON.stringify(v)
  return /[.eE]/.test(s) ? s : `${s}.0`
}

/** `JSON.stringify(value, null, indent)`, but `JsonFloat`s are written as floats (`6.0`). */
export function stringifyJsonKeepingFloats(value: unknown, indent = 2): string {
  const pad = (depth: number) => ' '.repeat(indent * depth)
  const write = (v: unknown, depth: number): string | undefined => {
    if (v instanceof JsonFloat) return floatText(v.value)
    if (v === null || typeof v !== 'object') return JSON.stringify(v)
    if (Array.isArray(v)) {
      if (v.length === 0) return '[]'
      return `[\n${v.map((x) => `${pad(depth + 1)}${write(x, depth + 1) ?? 'null'}`).join(',\n')}\n${pad(depth)}]`
    }
    const entries = Object.entries(v as Record<string, unknown>)
      .map(([k, x]) => [k, write(x, depth + 1)] as const)
      .filter(([, x]) => x !== undefined)
    if (entries.length === 0) return '{}'
    return `{\n${entries.map(([k, x]) => `${pad(depth + 1)}${JSON.stringify(k)}: ${x}`).join(',\n')}\n${pad(depth)}}`
  }
  return write(value, 0) ?? 'null'
}
