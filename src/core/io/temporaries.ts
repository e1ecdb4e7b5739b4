/**
 * Names of temporary outputs and work folders, and the removal of stale ones.
 *
 * Every temporary carries the PID of the process that owns it:
 * - `.<name>.tmp-<pid>-<hex>`: an output being written next to its final name (atomic files and folders);
 * - `.<name>.old-<pid>-<hex>`: a folder output being replaced, moved aside until the new one is in place;
 * - `lora-<what>-<pid>-<hex>` (or with a leading dot): a work folder (the benchmark's scratch
 *   folder, the demo's, the decoder's external data, compress's packed input).
 *
 * The exit cleanup (`exit-cleanup.ts`) removes them on exit and on SIGINT, SIGTERM and SIGHUP; a
 * SIGKILL (or a power cut) leaves them. So before a command writes into a folder it calls
 * `removeStaleTemporaries(folder)`, which removes those whose owner is no longer alive. A stale
 * `.old-` folder whose final name is missing (killed between the two renames of a replacement) is
 * put back under its final name instead: it is the user's previous output.
 */
import {randomBytes} from 'node:crypto'
import {mkdirSync} from 'node:fs'
import {lstat, mkdir, readdir, rename, rm} from 'node:fs/promises'
import {basename, dirname, join} from 'node:path'
import {describeSystemError} from '../errors.js'
import {removeOnExit} from './exit-cleanup.js'

/** What a temporary next to a final path is for. */
export type SiblingRole = 'tmp' | 'old'

const SIBLING = /^\.(.+)\.(tmp|old)-(\d+)-[0-9a-f]{8}$/
const WORK_FOLDER = /^\.?lora-[a-z0-9-]+?-(\d+)-[0-9a-f]{8}$/

function suffix(): string {
  return `${process.pid}-${randomBytes(4).toString('hex')}`
}

/** `<folder>/.<name>.<role>-<pid>-<hex>`: a temporary beside `finalPath`, owned by this process. */
export function temporarySibling(finalPath: string, role: SiblingRole = 'tmp'): string {
  return join(dirname(finalPath), `.${basename(finalPath)}.${role}-${suffix()}`)
}

/** `lora-<what>-<pid>-<hex>` (with a leading dot when `hidden`): the name of a work folder owned by this process. */
export function workFolderName(what: string, hidden = false): string {
  if (!/^[a-z0-9]+(?:-[a-z0-9]+)*$/.test(what)) throw new Error(`work folder kind "${what}" must be lower-case words joined by hyphens`)
  return `${hidden ? '.' : ''}lora-${what}-${suffix()}`
}

/** The owner PID of a temporary's name, or undefined for a name that is no temporary of ours. */
export function temporaryOwner(name: string): number | undefined {
  const m = SIBLING.exec(name) ?? WORK_FOLDER.exec(name)
  if (!m) return undefined
  const pid = Number(m[m.length === 4 ? 3 : 1])
  return Number.isSafeInteger(pid) && pid > 0 ? pid : undefined
}

/**
 * Whether process `pid` is alive. A process of another user counts as alive
 * (EPERM), and so does a PID reused by an unrelated process: a temporary is
 * kept rather than removed when in doubt.
 */
export function processAlive(pid: number): boolean {
  if (pid === process.pid) return true
  try {
    process.kill(pid, 0)
    return true
  } catch (error) {
    return (error as NodeJS.ErrnoException).code !== 'ESRCH'
  }
}

/** What `removeStaleTemporaries` did. */
export interface StaleCleanup {
  /** Paths removed. */
  removed: string[]
  /** `.old-` folders put back under their final name. */
  restored: string[]
}

/**
 * Remove the temporaries in `folder` whose owner process is gone (best effort:
 * a missing folder or an entry that cannot be removed is left as it is).
 */
export async function removeStaleTemporaries(folder: string): Promise<StaleCleanup> {
  const done: StaleCleanup = {removed: [], restored: []}
  let names: string[]
  try {
    names = await readdir(folder)
  } catch {
    return done
  }
  for (const name of names) {
    const pid = temporaryOwner(name)
    if (pid === undefined || processAlive(pid)) continue
    const path = join(folder, name)
    try {
      const sibling = SIBLING.exec(name)
      if (sibling && sibling[2] === 'old') {
        const finalPath = join(folder, sibling[1]!)
        const present = await lstat(finalPath).then(
          () => true,
          () => false,
        )
        if (!present) {
          await rename(path, finalPath)
          done.restored.push(finalPath)
          continue
        }
      }
      await rm(path, {recursive: true, force: true})
      done.removed.push(path)
    } catch {
      // another process got there first, or no permission: leave it
    }
  }
  return done
}

/** A work folder owned by this process: removed by `remove()`, on exit or a signal, or by a later run once stale. */
export interface WorkFolder {
  readonly path: string
  /** Remove the folder and its exit cleanup (safe to call twice). */
  remove(): Promise<void>
}

/**
 * Create a work folder `lora-<what>-<pid>-<hex>` in `parent` (removing stale
 * ones of dead processes there first), registered with the exit cleanup.
 * @throws InputError naming the folder when it cannot be created
 */
export async function createWorkFolder(parent: string, what: string, options: {hidden?: boolean} = {}): Promise<WorkFolder> {
  await removeStaleTemporaries(parent)
  const path = join(parent, workFolderName(what, options.hidden))
  const release = removeOnExit(path)
  try {
    await mkdir(path, {recursive: true})
  } catch (error) {
    release()
    throw describeSystemError(error, 'create work folder', path)
  }
  let removed = false
  return {
    path,
    async remove() {
      if (removed) return
      removed = true
      await rm(path, {recursive: true, force: true})
      release()
    },
  }
}

/** `createWorkFolder` for synchronous callers (the stale sweep is skipped: the next asynchronous one does it). */
export function createWorkFolderSync(parent: string, what: string): {path: string; release: () => void} {
  const path = join(parent, workFolderName(what))
  const release = removeOnExit(path)
  try {
    mkdirSync(path, {recursive: true})
  } catch (error) {
    release()
    throw describeSystemError(error, 'create work folder', path)
  }
  return {path, release}
}
