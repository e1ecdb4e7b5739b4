/**
 * Turning what a user passes to `lora pack` (adapter folders, folders of
 * adapter folders, globs, a `--list` file) into an ordered list of adapter
 * folders. Order is kept as given; a glob or a folder of adapters expands in
 * sorted order.
 */
import {readdir, stat} from 'node:fs/promises'
import {basename, dirname, join, resolve} from 'node:path'
import {InputError, UsageError} from '../errors.js'
import {ADAPTER_CONFIG_NAME, ADAPTER_WEIGHTS_NAME} from '../formats/peft-adapter.js'
import {sanitizeName} from '../formats/safetensors-header.js'
import {expandGlob, hasGlobMagic} from '../io/glob.js'
import {readRegularText} from '../io/regular-file.js'

/** A `--list` file larger than this is not a list of paths. */
export const MAX_LIST_BYTES = 64 * 1024 * 1024

export interface ResolveInputsOptions {
  /** Adapter folders, folders holding adapter folders, or globs. */
  inputs: readonly string[]
  /** A file with one such path per line (blank lines and `#` comments skipped). */
  list?: string
  /** Relative paths and globs resolve against this (default: the process's). */
  cwd?: string
}

async function kind(path: string): Promise<'dir' | 'file' | 'missing'> {
  try {
    return (await stat(path)).isDirectory() ? 'dir' : 'file'
  } catch {
    return 'missing'
  }
}

async function isAdapterFolder(path: string): Promise<boolean> {
  return (await kind(join(path, ADAPTER_CONFIG_NAME))) === 'file'
}

/** Adapter folders directly inside `dir`, sorted by name. */
async function childAdapters(dir: string): Promise<string[]> {
  const names = (await readdir(dir, {withFileTypes: true})).filter((e) => e.isDirectory() || e.isSymbolicLink()).map((e) => e.name).sort()
  const out: string[] = []
  for (const name of names) if (await isAdapterFolder(join(dir, name))) out.push(join(dir, name))
  return out
}

/** One argument → adapter folders. */
async function resolveOne(input: string, cwd: string, origin: string): Promise<string[]> {
  const path = resolve(cwd, input)
  const k = await kind(path)
  if (k === 'dir') {
    if (await isAdapterFolder(path)) return [path]
    const children = await childAdapters(path)
    if (children.length === 0) {
      throw new InputError('PACK_NOT_AN_ADAPTER', `${origin}${input}: folder has no ${ADAPTER_CONFIG_NAME} and no adapter folders inside`)
    }
    return children
  }
  if (k === 'file') {
    const name = basename(path)
    if (name === ADAPTER_CONFIG_NAME || name === ADAPTER_WEIGHTS_NAME) return [dirname(path)]
    throw new InputError('PACK_NOT_AN_ADAPTER', `${origin}${input}: is a file, expected an adapter folder (with ${ADAPTER_CONFIG_NAME} and ${ADAPTER_WEIGHTS_NAME})`)
  }
  if (!hasGlobMagic(input)) {
    throw new InputError('IO_ENOENT', `${origin}read adapter ${input}: no such file or directory`)
  }
  let matches: string[]
  try {
    matches = await expandGlob(input, cwd)
  } catch (error) {
    if (error instanceof RangeError) throw new UsageError('PACK_BAD_GLOB', `${origin}${input}: ${error.message}`)
    throw error
  }
  if (matches.length === 0) throw new InputError('PACK_GLOB_NO_MATCH', `${origin}glob "${sanitizeName(input)}" matches nothing`)
  const out: string[] = []
  for (const m of matches) {
    const name = basename(m)
    if ((await kind(m)) === 'dir' && (await isAdapterFolder(m))) out.push(m)
    else if (name === ADAPTER_CONFIG_NAME) out.push(dirname(m))
  }
  if (out.length === 0) {
    throw new InputError('PACK_GLOB_NO_MATCH', `${origin}glob "${sanitizeName(input)}" matches ${matches.length} paths but no adapter folder (e.g. ${sanitizeName(matches[0]!)})`)
  }
  return out
}

/** The lines of a `--list` file that name paths. */
async function readList(list: string): Promise<string[]> {
  const text = await readRegularText(list, MAX_LIST_BYTES, (size) => new InputError('PACK_BAD_LIST', `read ${list}: ${size} bytes is too large for a list of adapter paths`))
  return text
    .split(/\r?\n/)
    .map((l) => l.trim())
    .filter((l) => l.length > 0 && !l.startsWith('#'))
}

/**
 * The adapter folders named by `inputs` and `list` (absolute paths, in order).
 * @throws InputError for a missing path, a glob that matches nothing, a folder
 *   that holds no adapter, an empty list, or an adapter named twice
 * @throws UsageError when nothing is given
 */
export async function resolveAdapterInputs(options: ResolveInputsOptions): Promise<string[]> {
  const cwd = resolve(options.cwd ?? process.cwd())
  const out: string[] = []
  for (const input of options.inputs) out.push(...(await resolveOne(input, cwd, '')))
  if (options.list !== undefined) {
    const listPath = resolve(cwd, options.list)
    const lines = await readList(listPath)
    if (lines.length === 0) throw new InputError('PACK_BAD_LIST', `read ${options.list}: the list names no adapter (one path per line; # starts a comment)`)
    for (const [i, line] of lines.entries()) out.push(...(await resolveOne(line, cwd, `${options.list} entry ${i + 1}: `)))
  }
  if (out.length === 0) throw new UsageError('PACK_NO_INPUT', 'pack: give adapter folders, globs, or --list FILE')
  const seen = new Set<string>()
  for (const path of out) {
    if (seen.has(path)) throw new InputError('PACK_DUPLICATE_ADAPTER', `pack: adapter ${path} is given twice (each adapter takes one slot)`)
    seen.add(path)
  }
  return out
}
