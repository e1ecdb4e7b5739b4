/**
 * The one glob dialect of the project, shell-style: `*` (any run of
 * characters), `?` (one character), `[abc]`, `[a-z]`, `[!abc]` / `[^abc]`
 * (character classes), `\` escapes the next character.
 *
 * Paths (`expandGlob`, walking the file system): `*`, `?` and classes stay
 * within one path segment, do not match a leading `.`, and `**` as a whole
 * segment is zero or more folders; `**` does not descend into hidden folders
 * or follow symbolic links to folders (so a link cycle cannot loop).
 *
 * Names (`globToRegExp`, e.g. `--include` / `--exclude` on tensor names): the
 * glob matches the whole name, and `*` runs across dots.
 */
import {readdir, stat} from 'node:fs/promises'
import {isAbsolute, join, resolve, sep} from 'node:path'
import {pathExists} from './path-exists.js'

/** Whether `text` holds an unescaped glob character (`*`, `?`, `[`). */
export function hasGlobMagic(text: string): boolean {
  for (let i = 0; i < text.length; i++) {
    const c = text[i]
    if (c === '\\') i++
    else if (c === '*' || c === '?' || c === '[') return true
  }
  return false
}

/**
 * The regular expression matching one path segment against glob segment `segment`.
 * An unclosed `[` is a literal `[`.
 * @throws RangeError for an impossible class such as `[z-a]`
 */
export function segmentToRegExp(segment: string): RegExp {
  // a leading dot is only matched by a literal dot
  const guard = segment.startsWith('.') ? '' : '(?!\\.)'
  return compile(segment, '/', guard, '')
}

/**
 * The regular expression matching a whole name (a tensor name) against `glob`:
 * `*` any run of characters (dots included), `?` one character, classes and
 * escapes as in paths.
 * @throws RangeError for an impossible class such as `[z-a]`
 */
export function globToRegExp(glob: string): RegExp {
  return compile(glob, '', '', 's')
}

/** `^guard body$`, where `*`, `?` and classes never match `separator` (none when empty). */
function compile(segment: string, separator: '/' | '', guard: string, flags: string): RegExp {
  const any = separator ? `[^${separator}]` : '.'
  let re = ''
  for (let i = 0; i < segment.length; i++) {
    const c = segment[i]!
    if (c === '\\' && i + 1 < segment.length) {
      re += escapeRegExp(segment[++i]!)
    } else if (c === '*') {
      re += `${any}*`
    } else if (c === '?') {
      re += any
    } else if (c === '[') {
      const close = classEnd(segment, i)
      if (close < 0) {
        re += '\\['
        continue
      }
      let body = segment.slice(i + 1, close)
      let negate = false
      if (body.startsWith('!') || body.startsWith('^')) {
        negate = true
        body = body.slice(1)
      }
      re += `[${negate ? `^${separator}` : ''}${body.replace(/\\/g, '\\\\').replace(/\[/g, '\\[').replace(/\]/g, '\\]')}]`
      i = close
    } else {
      re += escapeRegExp(c)
    }
  }
  try {
    return new RegExp(`^${guard}${re}$`, flags)
  } catch {
    throw new RangeError(`glob segment "${segment}" has an invalid character class`)
  }
}

/** Index of the `]` closing the class opened at `open`, or -1 (a `]` right after `[`, `[!` or `[^` is literal). */
function classEnd(segment: string, open: number): number {
  let i = open + 1
  if (segment[i] === '!' || segment[i] === '^') i++
  if (segment[i] === ']') i++
  for (; i < segment.length; i++) if (segment[i] === ']') return i
  return -1
}

function escapeRegExp(c: string): string {
  return c.replace(/[\\^$.*+?()[\]{}|/-]/g, '\\$&')
}

function unescape(segment: string): string {
  return segment.replace(/\\(.)/g, '$1')
}

/**
 * Every existing path matching `pattern` (relative patterns resolve against
 * `cwd`), as absolute paths, sorted and without duplicates.
 */
export async function expandGlob(pattern: string, cwd = process.cwd()): Promise<string[]> {
  const absolute = isAbsolute(pattern)
  const segments = splitSegments(pattern)
  const root = absolute ? sep : resolve(cwd)
  const found = new Set<string>()
  await walk(root, segments, 0, found)
  return [...found].sort()
}

/** Split on `/` (not on escaped characters), dropping empty segments. */
function splitSegments(pattern: string): string[] {
  const out: string[] = []
  let current = ''
  for (let i = 0; i < pattern.length; i++) {
    const c = pattern[i]!
    if (c === '\\' && i + 1 < pattern.length && pattern[i + 1] !== '/') {
      current += c + pattern[++i]!
    } else if (c === '/') {
      if (current.length > 0) out.push(current)
      current = ''
    } else current += c
  }
  if (current.length > 0) out.push(current)
  return out
}

async function isDirectory(path: string): Promise<boolean> {
  try {
    return (await stat(path)).isDirectory()
  } catch {
    return false
  }
}

async function entries(dir: string): Promise<Array<{name: string; dir: boolean; link: boolean}>> {
  try {
    const list = await readdir(dir, {withFileTypes: true})
    return list.map((e) => ({name: e.name, dir: e.isDirectory(), link: e.isSymbolicLink()}))
  } catch {
    return []
  }
}

async function walk(dir: string, segments: readonly string[], index: number, found: Set<string>): Promise<void> {
  if (index === segments.length) {
    if (await pathExists(dir)) found.add(dir)
    return
  }
  const segment = segments[index]!
  if (segment === '**') {
    await walk(dir, segments, index + 1, found)
    for (const e of await entries(dir)) {
      if (e.dir && !e.link && !e.name.startsWith('.')) await walk(join(dir, e.name), segments, index, found)
    }
    return
  }
  if (segment === '.' || segment === '..' || !hasGlobMagic(segment)) {
    const next = join(dir, unescape(segment))
    if (index + 1 === segments.length ? await pathExists(next) : await isDirectory(next)) await walk(next, segments, index + 1, found)
    return
  }
  const re = segmentToRegExp(segment)
  const last = index + 1 === segments.length
  for (const e of await entries(dir)) {
    if (!re.test(e.name)) continue
    const next = join(dir, e.name)
    if (last) found.add(next)
    else if (e.dir || (e.link && (await isDirectory(next)))) await walk(next, segments, index + 1, found)
  }
}
