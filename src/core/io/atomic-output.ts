/**
 * Outputs are written under a temporary name in the target folder and renamed
 * into place only on success, so a crash, Ctrl-C or a full disk never leaves
 * a truncated file (or half a folder) under the final name.
 *
 * Temporary paths are registered with the process's exit cleanup
 * (`exit-cleanup.ts`) while open; on SIGINT/SIGTERM/SIGHUP or a normal exit
 * they are removed. (SIGKILL cannot be caught: the temporary file may stay,
 * the final name is still never a partial output.)
 */
import {randomBytes} from 'node:crypto'
import {mkdir, open, rename, rm} from 'node:fs/promises'
import type {FileHandle} from 'node:fs/promises'
import {basename, dirname, join, resolve} from 'node:path'
import {UsageError, describeSystemError} from '../errors.js'
import {removeOnExit} from './exit-cleanup.js'
import {pathExists} from './path-exists.js'
import {writeFully} from './positional.js'

function tempSibling(finalPath: string): string {
  return join(dirname(finalPath), `.${basename(finalPath)}.tmp-${process.pid}-${randomBytes(4).toString('hex')}`)
}

/**
 * Refuse to overwrite `path` unless `force`.
 * @throws UsageError OUTPUT_EXISTS
 */
export async function assertOutputFree(path: string, force = false): Promise<void> {
  if (!force && (await pathExists(path))) {
    throw new UsageError('OUTPUT_EXISTS', `write ${path}: already exists (use --force to overwrite)`)
  }
}

export interface OutputOptions {
  /** Replace an existing output. */
  force?: boolean
}

/** Check that `finalPath` is free, then make its temporary sibling with `make`, registered for removal on exit. */
async function startTemporary<T>(finalPath: string, options: OutputOptions, make: (temp: string) => Promise<T>): Promise<{target: string; temp: string; made: T; release: () => void}> {
  const target = resolve(finalPath)
  await assertOutputFree(target, options.force)
  const temp = tempSibling(target)
  const release = removeOnExit(temp)
  try {
    await mkdir(dirname(target), {recursive: true})
    return {target, temp, made: await make(temp), release}
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
    const t = await startTemporary(finalPath, options, (temp) => open(temp, 'wx+'))
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
    await assertOutputFree(this.finalPath, this.force)
    await rename(this.tempPath, this.finalPath)
  }

  /** Close and delete the temporary file. */
  protected async discard(): Promise<void> {
    await this.handle.close().catch(() => undefined)
    await rm(this.tempPath, {force: true})
  }
}

/** A folder being filled under a temporary name. */
export class AtomicDirectory extends AtomicOutput {
  private constructor(
    finalPath: string,
    /** Write the folder's files here. */
    readonly path: string,
    force: boolean,
    release: () => void,
  ) {
    super(finalPath, force, release)
  }

  /**
   * Create the temporary folder next to `finalPath` (creating its parent if needed).
   * @throws UsageError when `finalPath` exists and not `force`
   */
  static async create(finalPath: string, options: OutputOptions = {}): Promise<AtomicDirectory> {
    const t = await startTemporary(finalPath, options, (temp) => mkdir(temp))
    return new AtomicDirectory(t.target, t.temp, options.force ?? false, t.release)
  }

  /** Rename the finished folder into place (replacing an old one when forced). */
  protected async moveIntoPlace(): Promise<void> {
    if (!(await pathExists(this.finalPath))) return rename(this.path, this.finalPath)
    if (!this.force) throw new UsageError('OUTPUT_EXISTS', `write ${this.finalPath}: already exists (use --force to overwrite)`)
    const old = tempSibling(this.finalPath)
    const releaseOld = removeOnExit(old)
    await rename(this.finalPath, old)
    await rename(this.path, this.finalPath)
    await rm(old, {recursive: true, force: true})
    releaseOld()
  }

  /** Delete the temporary folder. */
  protected async discard(): Promise<void> {
    await rm(this.path, {recursive: true, force: true})
  }
}

/**
 * Run `fn` with an atomic output; commit when it resolves, abort when it throws.
 */
export async function withAtomic<T, O extends AtomicFile | AtomicDirectory>(output: O, fn: (output: O) => Promise<T>): Promise<T> {
  try {
    const result = await fn(output)
    await output.commit()
    return result
  } catch (error) {
    await output.abort()
    throw error
  }
}
