/**
 * What the benchmark scripts share: the repository root they run from
 * (`dist/bench/*.js`), the value of a command-line flag, and running a
 * `lora` command in its own process with its exact command line printed.
 */
import {spawnSync} from 'node:child_process'
import {dirname, join, resolve} from 'node:path'
import {fileURLToPath} from 'node:url'

/** The repository root. */
export const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '../..')

/**
 * The word after `name` on the command line (`--ep cpu` → `cpu`), or
 * `fallback` when `name` is absent.
 */
export function flag(name: string): string | undefined
export function flag(name: string, fallback: string): string
export function flag(name: string, fallback?: string): string | undefined {
  const i = process.argv.indexOf(name)
  return i >= 0 ? process.argv[i + 1]! : fallback
}

/**
 * Run `lora <argv>` (this checkout's bin/run.js, no colour, its output on
 * this process's), after printing `$ lora <argv>`.
 * @returns its exit status (null when a signal ended it) and the seconds it took
 */
export function runLora(argv: readonly string[]): {status: number | null; seconds: number} {
  console.log(`\n$ lora ${argv.join(' ')}`)
  const t0 = Date.now()
  const r = spawnSync(process.execPath, [join(ROOT, 'bin/run.js'), ...argv], {stdio: ['ignore', 'inherit', 'inherit'], env: {...process.env, NO_COLOR: '1'}})
  return {status: r.status, seconds: (Date.now() - t0) / 1000}
}
