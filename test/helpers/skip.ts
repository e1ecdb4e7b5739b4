/**
 * Visible skips. A test that cannot run here (a fixture, a tool or a device
 * is missing) is registered with uvu's `test.skip`, so it counts under
 * "Skipped" and never as a pass, and its reason is printed twice: at once,
 * and again with every other skip in a list after uvu's totals.
 */
import {relative} from 'node:path'
import {fileURLToPath} from 'node:url'
import type {Callback, Test} from 'uvu'
import {REPO_ROOT} from './run-cli.js'

const skipped: string[] = []

function callerFile(): string {
  const frames = (new Error().stack ?? '').split('\n').slice(1)
  const frame = frames.find((f) => f.includes('file://') && !f.includes('/helpers/'))
  const url = /(file:\/\/[^\s)]+?):\d+:\d+/.exec(frame ?? '')?.[1]
  // name the source file: dist/test/x/y.test.js was compiled from test/x/y.test.ts
  return url ? relative(REPO_ROOT, fileURLToPath(url)).replace(/^dist\//, '').replace(/\.js$/, '.ts') : 'a test file'
}

/**
 * `test` itself when `reason` is undefined; otherwise a function that
 * registers each test as skipped and prints `[skip] <file> › <test>: <reason>`.
 *
 * @example skipIf(test, python3 ? undefined : 'python3 is absent')('parses as XML', () => { … })
 */
export function skipIf<T>(test: Test<T>, reason: string | undefined): (name: string, handler: Callback<T>) => void {
  if (reason === undefined) return test
  const file = callerFile()
  return (name: string) => {
    const line = `${file} › ${name}: ${reason}`
    if (skipped.length === 0) process.once('exit', printSkips)
    skipped.push(line)
    console.log(`\n  [skip] ${line}`)
    test.skip(name, () => {})
  }
}

function printSkips(): void {
  console.log(`\n  Skipped tests (${skipped.length}), with their reasons:`)
  for (const line of skipped) console.log(`  - ${line}`)
}
