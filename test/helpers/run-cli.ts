/**
 * Running `lora` from tests.
 *
 * `runCli` runs a command in this process, the way `bin/run.js` does
 * (oclif's `execute`: parse, run, and on failure oclif's own error handler),
 * with stdout and stderr captured, both streams seen as pipes (not a
 * terminal), and the exit status a user would get. A real process costs a
 * Node start and oclif's load on every call (seconds on a loaded machine);
 * this costs what the command itself costs.
 *
 * `runCliProcess` spawns `bin/run.js`: for the few tests that need a real
 * process (the bin entry, signals, a real terminal or pipe).
 */
import {spawnSync} from 'node:child_process'
import {dirname, join, resolve} from 'node:path'
import {fileURLToPath} from 'node:url'
import {stripVTControlCharacters} from 'node:util'
import {Config, execute} from '@oclif/core'
import {Exit} from '@oclif/core/handle'

/** Repository root (tests run from dist/test/…). */
export const REPO_ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '../../..')

export interface CliResult {
  /** Exit status: 0 ok, 1 a gate failed, 2 bad input or usage, 3 internal error. */
  status: number
  stdout: string
  stderr: string
}

export interface RunCliOptions {
  /** Extra environment variables for the run (restored afterwards). */
  env?: Record<string, string | undefined>
}

let running = false

/**
 * The CLI's oclif configuration, loaded afresh (a few ms once the command
 * modules are imported). Never shared between runs: oclif's help rewrites the
 * ids of the cached command entries it prints (`synth:adapters` becomes
 * `synth adapters`), which a real process never notices because it exits.
 */
export function cliConfig(): Promise<Config> {
  return Config.load({root: REPO_ROOT})
}

type Write = typeof process.stdout.write

/** Replace `stream.write` with a collector; returns the function that restores it. */
function capture(stream: NodeJS.WriteStream, chunks: Buffer[]): () => void {
  const write = stream.write
  const drainListeners = new Set(stream.listeners('drain'))
  const isTTY = Object.getOwnPropertyDescriptor(stream, 'isTTY')
  stream.write = ((chunk: string | Uint8Array, encoding?: BufferEncoding | ((error?: Error | null) => void), callback?: (error?: Error | null) => void) => {
    chunks.push(typeof chunk === 'string' ? Buffer.from(chunk, typeof encoding === 'string' ? encoding : 'utf8') : Buffer.from(chunk))
    const done = typeof encoding === 'function' ? encoding : callback
    if (done) process.nextTick(done)
    return true
  }) as Write
  // a pipe, as under spawnSync: no progress bars, warnings under --json stay quiet
  Object.defineProperty(stream, 'isTTY', {value: undefined, configurable: true, writable: true})
  return () => {
    stream.write = write
    // oclif's flush() waits for 'drain' once per run; in one long process those listeners would pile up
    for (const listener of stream.listeners('drain')) if (!drainListeners.has(listener)) stream.removeListener('drain', listener as () => void)
    if (isTTY) Object.defineProperty(stream, 'isTTY', isTTY)
    else delete (stream as {isTTY?: boolean}).isTTY
  }
}

/**
 * Run `lora <args>` in this process and return its exit status and output.
 * Colour codes are removed (oclif decides on colour once, from the test
 * runner's own terminal). One run at a time.
 */
export async function runCli(args: readonly string[], options: RunCliOptions = {}): Promise<CliResult> {
  if (running) throw new Error('runCli: a command is already running (await the previous call)')
  running = true
  const out: Buffer[] = []
  const err: Buffer[] = []
  const env = {NO_COLOR: '1', FORCE_COLOR: '0', ...options.env}
  const savedEnv = Object.fromEntries(Object.keys(env).map((k) => [k, process.env[k]]))
  const savedArgv = process.argv
  const savedExitCode = process.exitCode
  const realExit = Exit.exit
  let exitStatus: number | undefined
  const restoreOut = capture(process.stdout, out)
  const restoreErr = capture(process.stderr, err)
  try {
    for (const [k, v] of Object.entries(env)) {
      if (v === undefined) delete process.env[k]
      else process.env[k] = v
    }
    // oclif's error handler reads process.argv to print a command's help after a usage error
    process.argv = [process.execPath, join(REPO_ROOT, 'bin/run.js'), ...args]
    process.exitCode = undefined
    // where bin/run.js would end the process, note the status instead
    Exit.exit = ((code = 0) => {
      exitStatus ??= code
    }) as typeof Exit.exit
    await execute({args: [...args], loadOptions: {root: REPO_ROOT}})
    return {status: exitStatus ?? Number(process.exitCode ?? 0), stdout: decode(out), stderr: withoutNodeWarnings(decode(err))}
  } finally {
    Exit.exit = realExit
    process.exitCode = savedExitCode
    process.argv = savedArgv
    for (const [k, v] of Object.entries(savedEnv)) {
      if (v === undefined) delete process.env[k]
      else process.env[k] = v
    }
    restoreErr()
    restoreOut()
    running = false
  }
}

/**
 * Node's own process warnings ("(node:PID) Warning: Closing file descriptor 22 on garbage
 * collection") may come from anything this process did earlier, when the garbage collector
 * happens to run during a command: they are passed on to the test run's stderr, not counted
 * as the command's output.
 */
function withoutNodeWarnings(text: string): string {
  const lines = text.split(/(?<=\n)/)
  const warning = (line: string) => /^\(node:\d+\) |^\(Use `node --trace-warnings/.test(line)
  const warnings = lines.filter(warning)
  if (warnings.length === 0) return text
  process.nextTick(() => process.stderr.write(warnings.join('')))
  return lines.filter((l) => !warning(l)).join('')
}

function decode(chunks: Buffer[]): string {
  return stripVTControlCharacters(Buffer.concat(chunks).toString('utf8'))
}

/** Run `bin/run.js` with arguments in a real process: exit codes, signals and streams exactly as a user sees them. */
export function runCliProcess(args: readonly string[], options: {cwd?: string; env?: NodeJS.ProcessEnv; timeout?: number} = {}): CliResult {
  const result = spawnSync(process.execPath, [join(REPO_ROOT, 'bin/run.js'), ...args], {
    cwd: options.cwd ?? REPO_ROOT,
    env: {...process.env, ...options.env, NO_COLOR: '1', FORCE_COLOR: '0'},
    encoding: 'utf8',
    timeout: options.timeout ?? 120_000,
    maxBuffer: 64 * 1024 * 1024,
  })
  return {status: result.status ?? -1, stdout: result.stdout, stderr: result.stderr}
}
