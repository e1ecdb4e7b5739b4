/**
 * The one place that decides whether a command may write an output path, and
 * what `--force` may replace there. Every command that writes calls
 * `checkOutputs` before any work (its inputs named), and the atomic outputs
 * (`atomic-output.ts`) check again when they start and when they move into place.
 *
 * The rules:
 * - an output is never an input, never inside one, never contains one (`--out models`
 *   with `--base models/base` is refused: replacing `models` would delete the base);
 * - two outputs of one command never overlap (`--report` inside `--out`);
 * - the nearest existing folder above an output is a folder and writable (else one line
 *   naming it, before any work, instead of a failure after minutes of it);
 * - an existing output is refused without `force`; with `force` a file replaces only a
 *   regular file, and a folder only a folder that holds nothing but a previous output of
 *   the same kind, as its marker (`.lora-output.json`, written by `AtomicDirectory`)
 *   lists it. A file never replaces a folder, nor a folder a file.
 * Stale temporaries of dead processes beside the output are removed first (`temporaries.ts`).
 */
import {constants} from 'node:fs'
import {access, lstat, readFile, readdir, realpath, stat} from 'node:fs/promises'
import {basename, dirname, join, relative, resolve, sep} from 'node:path'
import {UsageError} from '../errors.js'
import {removeStaleTemporaries} from './temporaries.js'

/** The marker file of a folder output: what wrote it, of what kind, and every file it holds. */
export const OUTPUT_MARKER = '.lora-output.json'

/** Kinds of folder outputs (a marker's `kind`): a model folder, a PEFT adapter folder, a folder of synthetic adapters. */
export const MODEL_OUTPUT_KIND = 'model'
export const ADAPTER_OUTPUT_KIND = 'peft-adapter'
export const SYNTH_ADAPTERS_OUTPUT_KIND = 'synth-adapters'

/** A marker's content. */
export interface OutputMarker {
  tool: 'lora'
  /** The kind of output (`peft-adapter`, `model`, `synth-adapters`, …). */
  kind: string
  /** Every file of the folder, relative, with `/` between segments (the marker itself left out). */
  files: string[]
}

/** One path a command writes. */
export interface OutputTarget {
  path: string
  /** A single file, or a folder. */
  kind: 'file' | 'folder'
  /** For a folder: its kind, as its marker names it (only a folder of the same kind is replaced). */
  folderKind?: string
  /** How the user named it, for messages (`--out`, `--report`). */
  flag?: string
}

export interface OutputCheckOptions {
  /** Replace existing outputs (within the rules above). */
  force?: boolean
  /** Every file and folder the command reads. */
  inputs?: ReadonlyArray<string | undefined>
  /** Relative paths resolve against this (default: the working folder). */
  cwd?: string
  /** Check only overlaps and parent folders, not what exists at the outputs (a first check, before the kind of an output is known). */
  pathsOnly?: boolean
}

/** The path with symbolic links resolved as far as it exists (the rest appended as written). */
async function canonical(path: string): Promise<string> {
  const parts: string[] = []
  let at = path
  for (;;) {
    try {
      const real = await realpath(at)
      return parts.length === 0 ? real : join(real, ...parts.reverse())
    } catch {
      const parent = dirname(at)
      if (parent === at) return path
      parts.push(basename(at))
      at = parent
    }
  }
}

/** Whether `inner` is `outer` or lies inside it (both canonical). */
function within(inner: string, outer: string): boolean {
  if (inner === outer) return true
  const rel = relative(outer, inner)
  return rel !== '' && !rel.startsWith(`..${sep}`) && rel !== '..' && !rel.startsWith(sep)
}

const name = (t: OutputTarget) => t.flag ?? 'the output'

/**
 * Check every output of a command before it starts.
 * @returns the outputs' absolute paths, in order
 * @throws UsageError OUTPUT_IS_INPUT, OUTPUT_CONTAINS_INPUT, OUTPUT_INSIDE_INPUT, OUTPUTS_OVERLAP,
 *   OUTPUT_PARENT_NOT_FOLDER, OUTPUT_NOT_WRITABLE, OUTPUT_EXISTS, OUTPUT_KIND_MISMATCH, OUTPUT_NOT_REPLACEABLE
 */
export async function checkOutputs(targets: readonly OutputTarget[], options: OutputCheckOptions = {}): Promise<string[]> {
  const cwd = options.cwd ?? process.cwd()
  const outs = await Promise.all(targets.map(async (t) => ({target: t, path: resolve(cwd, t.path), real: await canonical(resolve(cwd, t.path))})))
  const inputs = await Promise.all((options.inputs ?? []).filter((p): p is string => p !== undefined).map(async (p) => ({path: p, real: await canonical(resolve(cwd, p))})))
  for (const out of outs) {
    for (const input of inputs) {
      const where = `write ${out.target.path}`
      if (out.real === input.real) throw new UsageError('OUTPUT_IS_INPUT', `${where}: ${name(out.target)} is the input ${input.path}; write somewhere else`)
      if (within(input.real, out.real)) throw new UsageError('OUTPUT_CONTAINS_INPUT', `${where}: ${name(out.target)} contains the input ${input.path} (replacing it would delete that input); write somewhere else`)
      if (within(out.real, input.real)) throw new UsageError('OUTPUT_INSIDE_INPUT', `${where}: ${name(out.target)} is inside the input ${input.path}; write somewhere else`)
    }
  }
  for (const [i, a] of outs.entries()) {
    for (const b of outs.slice(i + 1)) {
      if (within(a.real, b.real) || within(b.real, a.real)) throw new UsageError('OUTPUTS_OVERLAP', `write ${a.target.path}: ${name(a.target)} and ${name(b.target)} (${b.target.path}) overlap; give them separate paths`)
    }
  }
  for (const out of outs) {
    if (options.pathsOnly) await checkParent(out.target, out.path)
    else await checkOutput(out.target, out.path, options.force ?? false)
  }
  return outs.map((o) => o.path)
}

/**
 * Check one output path (the parent, what exists there, what `force` may
 * replace) and remove stale temporaries beside it.
 * @throws UsageError as `checkOutputs`
 */
export async function checkOutput(target: OutputTarget, absolute = resolve(target.path), force = false): Promise<void> {
  await checkParent(target, absolute)
  await removeStaleTemporaries(dirname(absolute))
  await checkReplaceable(target, absolute, force)
}

/** The nearest existing folder above the output is a folder we may write in. */
async function checkParent(target: OutputTarget, absolute: string): Promise<void> {
  let at = dirname(absolute)
  for (;;) {
    const info = await stat(at).catch((error: NodeJS.ErrnoException) => (error.code === 'ENOENT' ? undefined : error))
    if (info instanceof Error) {
      if ((info as NodeJS.ErrnoException).code === 'ENOTDIR') {
        at = dirname(at)
        continue
      }
      throw new UsageError('OUTPUT_NOT_WRITABLE', `write ${target.path}: cannot reach ${at} (${(info as NodeJS.ErrnoException).code})`)
    }
    if (info === undefined) {
      const parent = dirname(at)
      if (parent === at) return
      at = parent
      continue
    }
    if (!info.isDirectory()) throw new UsageError('OUTPUT_PARENT_NOT_FOLDER', `write ${target.path}: ${at} is a file, not a folder`)
    try {
      await access(at, constants.W_OK | constants.X_OK)
    } catch {
      throw new UsageError('OUTPUT_NOT_WRITABLE', `write ${target.path}: the folder ${at} is not writable`)
    }
    return
  }
}

/** What exists at the output may be replaced: nothing, or (with force) a previous output of the same kind. */
export async function checkReplaceable(target: OutputTarget, absolute: string, force: boolean): Promise<void> {
  const info = await lstat(absolute).catch(() => undefined)
  if (!info) return
  if (!force) throw new UsageError('OUTPUT_EXISTS', `write ${target.path}: already exists (use --force to replace it)`)
  const what = info.isDirectory() ? 'a folder' : info.isFile() ? 'a file' : info.isSymbolicLink() ? 'a symbolic link' : 'not a regular file or folder'
  if (target.kind === 'file') {
    if (!info.isFile()) throw new UsageError('OUTPUT_KIND_MISMATCH', `write ${target.path}: --force replaces only a file, and this is ${what}`)
    return
  }
  if (!info.isDirectory()) throw new UsageError('OUTPUT_KIND_MISMATCH', `write ${target.path}: this command writes a folder, and this is ${what}; --force replaces only a folder it wrote before`)
  const problem = await notOurs(absolute, target.folderKind ?? 'folder')
  if (problem) throw new UsageError('OUTPUT_NOT_REPLACEABLE', `write ${target.path}: --force replaces only a previous ${target.folderKind ?? 'output'} written by lora, and ${problem}; remove it yourself or write elsewhere`)
}

/** Why `dir` is not a previous output of `kind` holding only its own files (undefined when it is one). */
async function notOurs(dir: string, kind: string): Promise<string | undefined> {
  let marker: OutputMarker
  try {
    const parsed = JSON.parse(await readFile(join(dir, OUTPUT_MARKER), 'utf8')) as Partial<OutputMarker>
    if (parsed?.tool !== 'lora' || typeof parsed.kind !== 'string' || !Array.isArray(parsed.files)) return `its ${OUTPUT_MARKER} is not lora's`
    marker = parsed as OutputMarker
  } catch {
    return `it has no ${OUTPUT_MARKER} marker`
  }
  if (marker.kind !== kind) return `it holds a ${marker.kind}`
  const listed = new Set(marker.files)
  const foreign: string[] = []
  for (const file of await listFiles(dir)) if (file !== OUTPUT_MARKER && !listed.has(file)) foreign.push(file)
  if (foreign.length > 0) return `it holds files lora did not write there (${foreign.slice(0, 3).join(', ')}${foreign.length > 3 ? `, … ${foreign.length} in all` : ''})`
  return undefined
}

/**
 * Every entry below `dir` that is not a folder (files, links, anything else),
 * relative with `/`; symbolic links are listed, never followed.
 */
export async function listFiles(dir: string): Promise<string[]> {
  const out: string[] = []
  const walk = async (at: string, prefix: string) => {
    for (const e of await readdir(at, {withFileTypes: true})) {
      const rel = prefix ? `${prefix}/${e.name}` : e.name
      if (e.isDirectory()) await walk(join(at, e.name), rel)
      else out.push(rel)
    }
  }
  await walk(dir, '')
  return out.sort()
}

/** Write nothing; the marker's content for the folder `dir` as it is now. */
export async function markerFor(dir: string, kind: string): Promise<OutputMarker> {
  return {tool: 'lora', kind, files: (await listFiles(dir)).filter((f) => f !== OUTPUT_MARKER)}
}
