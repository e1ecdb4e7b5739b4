/**
 * The one exit cleanup of the process. Temporary outputs (atomic files and
 * folders, the demo's workspace, the benchmark's scratch folder) register a
 * synchronous action here while they live; when the process exits, or is
 * stopped by SIGINT, SIGTERM or SIGHUP, every registered action runs once
 * and a signal is then raised again so the process ends as it would have
 * (status 128 + the signal's number). The handlers are installed while at
 * least one action is registered and removed with the last one.
 * (SIGKILL cannot be caught: what it interrupts may leave a temporary file,
 * never a partial output under a final name.)
 */
import {rmSync} from 'node:fs'

/** The signals that run the cleanup. */
export const CLEANUP_SIGNALS: readonly NodeJS.Signals[] = Object.freeze(['SIGINT', 'SIGTERM', 'SIGHUP'])

const actions = new Set<() => void>()
let installed = false

function runAll(): void {
  const pending = [...actions]
  actions.clear()
  for (const action of pending) {
    try {
      action()
    } catch {
      // best effort while exiting
    }
  }
}

/**
 * How long a signal waits before cleaning up: file operations already running on libuv's threads
 * (a recursive mkdir of an output folder) land first, instead of recreating what the cleanup
 * removed in the moment before the process ends. No JavaScript runs meanwhile, so none start.
 */
const SETTLE_MS = 100

function onSignal(signal: NodeJS.Signals): void {
  Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, SETTLE_MS)
  runAll()
  uninstall()
  process.kill(process.pid, signal)
}

function install(): void {
  if (installed) return
  installed = true
  process.on('exit', runAll)
  for (const s of CLEANUP_SIGNALS) process.on(s, onSignal)
}

function uninstall(): void {
  if (!installed) return
  installed = false
  process.off('exit', runAll)
  for (const s of CLEANUP_SIGNALS) process.off(s, onSignal)
}

/**
 * Run `action` (synchronous, best effort) if the process exits or is
 * stopped by a signal before the returned function releases it.
 * @returns release: unregisters `action` without running it (safe to call twice)
 */
export function onExitCleanup(action: () => void): () => void {
  const own = () => action()
  actions.add(own)
  install()
  return () => {
    actions.delete(own)
    if (actions.size === 0) uninstall()
  }
}

/** Remove `path` (recursively, if it exists) on exit or a signal, until released. */
export function removeOnExit(path: string): () => void {
  return onExitCleanup(() => rmSync(path, {recursive: true, force: true}))
}

/** How many actions are registered now. */
export function pendingExitCleanups(): number {
  return actions.size
}
