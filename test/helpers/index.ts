/**
 * Shared test helpers: temporary folders, the real-adapter corpus in
 * ../shared, running the CLI, and tolerance checks.
 */
import {existsSync, mkdtempSync, rmSync} from 'node:fs'
import {tmpdir} from 'node:os'
import {join, resolve} from 'node:path'
import {REPO_ROOT} from './run-cli.js'

export {REPO_ROOT}

/** The third-party adapter corpus; read in place, never copied. */
export const REAL_ADAPTERS = resolve(REPO_ROOT, '../shared/real-adapters')

/** Why the real-adapter tests cannot run here (../shared/real-adapters is absent), or undefined when they can: `skipIf(test, realAdaptersMissing())`. */
export function realAdaptersMissing(): string | undefined {
  return existsSync(join(REAL_ADAPTERS, 'PROVENANCE.md')) ? undefined : `${REAL_ADAPTERS} is absent (the real-adapter corpus, see COMMON.md)`
}

/** @deprecated Kept for branches written against it: use `skipIf(test, realAdaptersMissing())`, which lists each skipped test with its reason. */
export function haveRealAdapters(suite: string): boolean {
  const missing = realAdaptersMissing()
  if (missing) console.log(`\n  [skip] ${suite}: ${missing}`)
  return missing === undefined
}

export {skipIf} from './skip.js'

/** A fresh temporary folder; remove it with `cleanup`. */
export function tempDir(prefix = 'lora-test-'): {path: string; cleanup: () => void} {
  const path = mkdtempSync(join(tmpdir(), prefix))
  return {path, cleanup: () => rmSync(path, {recursive: true, force: true})}
}

export {type CliResult, type RunCliOptions, cliConfig, runCli, runCliProcess} from './run-cli.js'

/** Largest |a[i] − b[i]|. */
export function maxAbsDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  if (a.length !== b.length) throw new Error(`length ${a.length} vs ${b.length}`)
  let m = 0
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i]! - b[i]!))
  return m
}

/** Largest |a[i]|. */
export function maxAbs(a: ArrayLike<number>): number {
  let m = 0
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i]!))
  return m
}

/** Await `promise` and return what it rejected with; fails the test when it resolves. */
export async function rejection(promise: Promise<unknown>): Promise<Error & {code?: string; exitCode?: number}> {
  try {
    await promise
  } catch (error) {
    return error as Error & {code?: string; exitCode?: number}
  }
  throw new Error('expected a rejection, but the promise resolved')
}
