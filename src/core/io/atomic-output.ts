/**
 * Outputs are written under a temporary name in the target folder and renamed
 * into place only on success, so a crash, Ctrl-C or a full disk never leaves
 * a truncated file (or half a folder) under the final name.
 *
 * Temporary paths are registered while open; on SIGINT/SIGTERM or a normal
 * exit they are removed. (SIGKILL cannot be caught: the temporary file may
 * stay, the final name is still never a partial output.)
 */
import {randomBytes} from 'node:crypto'
import {rmSync} from 'node:fs'
import {mkdir, open, rename, rm} from 'node:fs/promises'
import type {FileHandle} from 'node:fs/promises'
import {basename, dirname, join, resolve} from 'node:path'
import {UsageError, describeSystemError} from '../errors.js'
import {pathExists} from './path-exists.js'

const livePaths = new Set<string>()
let handlersInstalled = false

function cleanupSync(): void {
  for (const p of livePaths) {
    try {
      rmSync(p, {recursive: true, force: true})
    } catch {
      // best effort while exiting
    }
  }
  livePaths.clear()
}

function installHandlers(): void {
  if (handlersInstalled) return
  handlersInstalled = true
  process.on('exit', cleanupSync)
  for (const [signal, status] of [
    ['SIGINT', 130],
    ['SIGTERM', 143],
    ['SIGHUP', 129],
  ] as const) {
    process.once(signal, () => {
      cleanupSync()
      process.exit(status)
    })
  }
}

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

/** A file being written under a temporary name. */
export class AtomicFile {
  private done = false
  private constructor(
    readonly finalPath: string,
    readonly tempPath: string,
    readonly handle: FileHandle,
    private readonly force: boolean,
  ) {}

  /**
   * Create the temporary file next to `finalPath` (creating the folder if needed).
   * @throws UsageError when `finalPath` exists and not `force`
   */
  static async create(finalPath: string, options: OutputOptions = {}): Promise<AtomicFile> {
    const target = resolve(finalPath)
    await assertOutputFree(target, options.force)
    installHandlers()
    try {
      await mkdir(dirname(target), {recursive: true})
      const temp = tempSibling(target)
      livePaths.add(temp)
      const handle = await open(temp, 'wx+')
      return new AtomicFile(target, temp, handle, options.force ?? false)
    } catch (error) {
      throw describeSystemError(error, 'write', finalPath)
    }
  }

  /** Flush, close and rename into place. */
  async commit(): Promise<void> {
    if (this.done) return
    try {
      await this.handle.sync()
      await this.handle.close()
      await assertOutputFree(this.finalPath, this.force)
      await rename(this.tempPath, this.finalPath)
      this.done = true
      livePaths.delete(this.tempPath)
    } catch (error) {
      await this.abort()
      throw describeSystemError(error, 'write', this.finalPath)
    }
  }

  /** Close and delete the temporary file. Safe to call twice. */
  async abort(): Promise<void> {
    if (this.done) return
    this.done = true
    await this.handle.close().catch(() => undefined)
    await rm(this.tempPath, {force: true})
    livePaths.delete(this.tempPath)
  }
}

/** A folder being filled under a temporary name. */
export class AtomicDirectory {
  private done = false
  private constructor(
    readonly finalPath: string,
    /** Write the folder's files here. */
    readonly path: string,
    private readonly force: boolean,
  ) {}

  static async create(finalPath: string, options: OutputOptions = {}): Promise<AtomicDirectory> {
    const target = resolve(finalPath)
    await assertOutputFree(target, options.force)
    installHandlers()
    try {
      await mkdir(dirname(target), {recursive: true})
      const temp = tempSibling(target)
      livePaths.add(temp)
      await mkdir(temp)
      return new AtomicDirectory(target, temp, options.force ?? false)
    } catch (error) {
      throw describeSystemError(error, 'write', finalPath)
    }
  }

  /** Rename the finished folder into place (replacing an old one when forced). */
  async commit(): Promise<void> {
    if (this.done) return
    try {
      if (await pathExists(this.finalPath)) {
        if (!this.force) throw new UsageError('OUTPUT_EXISTS', `write ${this.finalPath}: already exists (use --force to overwrite)`)
        const old = tempSibling(this.finalPath)
        livePaths.add(old)
        await rename(this.finalPath, old)
        await rename(this.path, this.finalPath)
        await rm(old, {recursive: true, force: true})
        livePaths.delete(old)
      } else {
        await rename(this.path, this.finalPath)
      }
      this.done = true
      livePaths.delete(this.path)
    } catch (error) {
      await this.abort()
      throw describeSystemError(error, 'write', this.finalPath)
    }
  }

  async abort(): Promise<void> {
    if (this.done) return
    this.done = true
    await rm(this.path, {recursive: true, force: true})
    livePaths.delete(this.path)
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
