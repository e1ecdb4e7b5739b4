/**
 * Outputs are written under a temporary name in the target folder and renamed
 * into place only on success, so a crash, Ctrl-C or a full disk never leaves
 * a truncated file (or half a folder) under the final name.
 *
 * Temporary paths carry the owner's PID (`temporaries.ts`) and are
 * registered with the process's exit cleanup (`exit-cleanup.ts`) while open;
 * on SIGINT/SIGTERM/SIGHUP or a normal exit they are removed. SIGKILL cannot
 * be caught: the temporary stays until the next command writing beside it
 * removes it (its owner is dead); the final name is never a partial output.
 *
 * What may be replaced is decided in one place, `output-target.ts`: checked
 * when the temporary is made and again just before it moves into place.
 */
import {existsSync, renameSync, rmSync} from 'node:fs'
import {mkdir, open, rename, rm, writeFile} from 'node:fs/promises'
import type {FileHandle} from 'node:fs/promises'
import {dirname, join, resolve} from 'node:path'
import {describeSystemError} from '../errors.js'
import {onExitCleanup, removeOnExit} from './exit-cleanup.js'
import {OUTPUT_MARKER, OutputTarget, checkOutput, checkReplaceable, markerFor} from './output-target.js'
import {pathExists} from './path-exists.js'
import {writeFully} from './positional.js'
import {temporarySibling} from './temporaries.js'

export interface OutputOptions {
  /** Replace an existing output (only a file by a file, a folder by a folder of the same kind: `output-target.ts`). */
  force?: boolean
}

export interface FolderOutputOptions extends OutputOptions {
  /** The folder's kind, written in its marker: `--force` replaces only a folder of the same kind. */
  kind: string
}

/** Check the output, then make its temporary sibling with `make`, registered for removal on exit. */
async function startTemporary<T>(finalPath: string, target: Omit<OutputTarget, 'path'>, options: OutputOptions, make: (temp: string) => Promise<T>): Promise<{target: string; temp: string; made: T; release: () => void}> {
  const absolute = resolve(finalPath)
  await checkOutput({...target, path: finalPath}, absolute, options.force ?? false)
  const temp = temporarySibling(absolute)
  const release = removeOnExit(temp)
  try {
    await mkdir(dirname(absolute), {recursive: true})
    return {target: absolute, temp, made: await make(temp), release}
  } catch (error) {
    release()
    throw describeSystemError(error, 'write', finalPath)
  }
}

/** What a file and a folder written under a temporary name share: commit once, or abort once. */
abstract class AtomicOutput {
  private done = false

  protected constructor(
    readonly finalPath: string,
    protected readonly force: boolean,
    private readonly release: () => void,
  ) {}

  /** Move the finished temporary into place. */
  protected abstract moveIntoPlace(): Promise<void>
  /** Delete the temporary. */
  protected abstract discard(): Promise<void>

  /** Rename into place (aborting on failure). Safe to call twice. */
  async commit(): Promise<void> {
    if (this.done) return
    try {
      await this.moveIntoPlace()
      this.done = true
      this.release()
    } catch (error) {
      await this.abort()
      throw describeSystemError(error, 'write', this.finalPath)
    }
  }

  /** Delete the temporary. Safe to call twice. */
  async abort(): Promise<void> {
    if (this.done) return
    this.done = true
    await this.discard()
    this.release()
  }
}

/** A file being written under a temporary name. */
export class AtomicFile extends AtomicOutput {
  private constructor(
    finalPath: string,
    readonly tempPath: string,
    readonly handle: FileHandle,
    force: boolean,
    release: () => void,
  ) {
    super(finalPath, force, release)
  }

  /**
   * Create the temporary file next to `finalPath` (creating the folder if needed).
   * @throws UsageError when `finalPath` exists and not `force`
   */
  static async create(finalPath: string, options: OutputOptions = {}): Promise<AtomicFile> {
    const t = await startTemporary(finalPath, {kind: 'file'}, options, (temp) => open(temp, 'wx+'))
    return new AtomicFile(t.target, t.temp, t.made, options.force ?? false, t.release)
  }

  /**
   * Create the temporary file at its final `size` with `header` written at
   * offset 0: how the plan-then-stream writers (safetensors, GGUF) start.
   * @throws UsageError when `finalPath` exists and not `force`
   */
  static async createPlanned(finalPath: string, size: number, header: Uint8Array, options: OutputOptions = {}): Promise<AtomicFile> {
    const output = await AtomicFile.create(finalPath, options)
    try {
      await output.handle.truncate(size)
      await writeFully(output.handle, header, 0)
    } catch (error) {
      await output.abort()
      throw describeSystemError(error, 'write', finalPath)
    }
    return output
  }

  /** Flush, close and rename into place. */
  protected async moveIntoPlace(): Promise<void> {
    await this.handle.sync()
    await this.handle.close()
    await checkReplaceable({path: this.finalPath, kind: 'file'}, this.finalPath, this.force)
    await rename(this.tempPath, this.finalPath)
  }

  /** Close and delete the temporary file. */
  protected async discard(): Promise<void> {
    await this.handle.close().catch(() => undefined)
    await rm(this.tempPath, {force: true})
  }
}

/**
 * A folder being filled under a temporary name. On commit it gets its marker
 * (`.lora-output.json`: its kind and every file in it), by which a later
 * `--force` recognises it as replaceable; an existing folder is replaced
 * only when it is such an output of the same kind, holding nothing else.
 */
export class AtomicDirectory extends AtomicOutput {
  private constructor(
    finalPath: string,
    /** Write the folder's files here. */
    readonly path: string,
    /** The folder's kind (its marker's). */
    readonly kind: string,
    force: boolean,
    release: () => void,
  ) {
    super(finalPath, force, release)
  }

  /**
   * Create the temporary folder next to `finalPath` (creating its parent if needed).
   * @throws UsageError when `finalPath` exists and may not be replaced (`output-target.ts`)
   */
  static async create(finalPath: string, options: FolderOutputOptions): Promise<AtomicDirectory> {
    const t = await startTemporary(finalPath, {kind: 'folder', folderKind: options.kind}, options, (temp) => mkdir(temp))
    return new AtomicDirectory(t.target, t.temp, options.kind, options.force ?? false, t.release)
  }

  /**
   * Write the marker, then rename the finished folder into place. An old
   * folder (forced) moves aside first (`.<name>.old-<pid>-<hex>`), is removed
   * once the new one is in place, and is put back if that rename fails.
   */
  protected async moveIntoPlace(): Promise<void> {
    await writeFile(join(this.path, OUTPUT_MARKER), `${JSON.stringify(await markerFor(this.path, this.kind))}\n`)
    await checkReplaceable({path: this.finalPath, kind: 'folder', folderKind: this.kind}, this.finalPath, this.force)
    if (!(await pathExists(this.finalPath))) return rename(this.path, this.finalPath)
    const old = temporarySibling(this.finalPath, 'old')
    const finalPath = this.finalPath
    // stopped between the two renames: the old folder goes back under its name
    const releaseOld = onExitCleanup(() => (existsSync(finalPath) ? rmSync(old, {recursive: true, force: true}) : renameSync(old, finalPath)))
    await rename(this.finalPath, old)
    try {
      await rename(this.path, this.finalPath)
    } catch (error) {
      releaseOld()
      await rename(old, this.finalPath)
      throw error
    }
    await rm(old, {recursive: true, force: true})
    releaseOld()
  }

  /** Delete the temporary folder. */
  protected async discard(): Promise<void> {
    await rm(this.path, {recursive: true, force: true})
  }
}

/**
 * Run `fn` with an atomic output; commit when it resolves, abort when it
 * throws (a system error then names the output's path).
 */
export async function withAtomic<T, O extends AtomicFile | AtomicDirectory>(output: O, fn: (output: O) => Promise<T>): Promise<T> {
  try {
    const result = await fn(output)
    await output.commit()
    return result
  } catch (error) {
    await output.abort()
    throw describeSystemError(error, 'write', output.finalPath)
  }
}
