/**
 * The folder `lora demo` writes into: a temporary folder removed at the end
 * (also on an error, SIGINT or SIGTERM), or `--out DIR`, kept on success. A
 * non-empty DIR is refused unless `force`; then the demo's own entries
 * (`base`, `adapters`, `pack.safetensors`, …) replace those of the same
 * name and nothing else in DIR is touched. On a failure or a signal, what
 * this run wrote into DIR is removed again (and DIR itself when the run
 * created it), so a failed demo leaves no partial output behind.
 */
import {mkdirSync, readdirSync, rmSync, statSync} from 'node:fs'
import {tmpdir} from 'node:os'
import {join, resolve} from 'node:path'
import {UsageError} from '../errors.js'
import {onExitCleanup} from '../io/exit-cleanup.js'
import {createWorkFolderSync} from '../io/temporaries.js'

export interface WorkspaceOptions {
  /** Keep the artifacts here; a temporary folder when absent. */
  out?: string
  /** Write into a non-empty `out`, replacing the demo's entries there. */
  force?: boolean
}

export class DemoWorkspace {
  private readonly written = new Set<string>()
  private live = true
  /** Unregisters the exit cleanup (which discards the run's output on an exit or signal before `finish`). */
  private readonly releaseCleanup = onExitCleanup(() => this.discardSync())

  private constructor(
    /** Absolute path of the folder. */
    readonly dir: string,
    /** Whether the folder stays after a successful run (`--out`). */
    readonly kept: boolean,
    /** Whether this run created `dir` (removed whole on failure). */
    private readonly created: boolean,
  ) {}

  /**
   * Create the temporary folder, or check and create `out`.
   * @throws UsageError OUTPUT_EXISTS for a non-empty `out` without `force`; OUTPUT_NOT_DIR when `out` is a file
   */
  static open(options: WorkspaceOptions = {}): DemoWorkspace {
    if (options.out === undefined) {
      const work = createWorkFolderSync(tmpdir(), 'demo')
      work.release() // the workspace's own exit cleanup removes it
      return new DemoWorkspace(work.path, false, true)
    }
    const dir = resolve(options.out)
    let entries: string[] | undefined
    try {
      if (!statSync(dir).isDirectory()) throw new UsageError('OUTPUT_NOT_DIR', `demo --out ${options.out}: exists and is not a folder`)
      entries = readdirSync(dir)
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'ENOENT') throw error
    }
    if (entries && entries.length > 0 && !options.force) {
      throw new UsageError('OUTPUT_EXISTS', `demo --out ${options.out}: the folder is not empty (${entries.length} entries); use --force to write the demo's files into it, replacing those of the same names`)
    }
    if (!entries) mkdirSync(dir, {recursive: true})
    return new DemoWorkspace(dir, true, entries === undefined)
  }

  /** Absolute path of an entry of the folder. */
  path(name: string): string {
    return join(this.dir, name)
  }

  /** Record that `name` was written completely by this run (removed again if the run fails). */
  wrote(name: string): string {
    this.written.add(name)
    return this.path(name)
  }

  /** Entries written by this run, in order. */
  get entries(): string[] {
    return [...this.written]
  }

  /** The run succeeded: keep `out`, remove a temporary folder. */
  finish(): void {
    if (!this.kept) rmSync(this.dir, {recursive: true, force: true})
    this.release()
  }

  /** The run failed: remove what it wrote. */
  discard(): void {
    this.discardSync()
  }

  private discardSync(): void {
    if (!this.live) return
    try {
      if (this.created) rmSync(this.dir, {recursive: true, force: true})
      else for (const name of this.written) rmSync(this.path(name), {recursive: true, force: true})
    } catch {
      // best effort while failing or exiting
    }
    this.release()
  }

  private release(): void {
    this.live = false
    this.releaseCleanup()
  }
}
