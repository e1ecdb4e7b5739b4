/**
 * The one error type of the library. Every failure a user can cause (a bad
 * file, a bad flag value, an impossible request) is a `LoraError` with a
 * stable `code`, a one-line message of the form
 * `<action> <file>: <problem> (got X, expected Y)` and an exit status.
 *
 * Exit statuses: 2 bad input or usage, 1 a quality/regression gate failed,
 * 3 an internal error (a bug: please report it).
 */

/** Exit status for bad input or usage. */
export const EXIT_BAD_INPUT = 2
/** Exit status for a failed quality or regression gate. */
export const EXIT_GATE_FAILED = 1
/** Exit status for an internal error (a bug). */
export const EXIT_INTERNAL = 3

export interface LoraErrorOptions {
  /** Short hints that help the user fix the problem. */
  suggestions?: string[]
  /** The underlying error, kept for debugging. */
  cause?: unknown
}

export class LoraError extends Error {
  /** Stable machine-readable code, e.g. `SAFETENSORS_HEADER_TOO_LARGE`. */
  readonly code: string
  /** Process exit status (read by oclif's `--json` path). */
  readonly exitCode: number
  /** The same status where oclif's plain path reads it. */
  readonly oclif: {exit: number}
  readonly suggestions?: string[]

  constructor(code: string, message: string, exitCode: number, options: LoraErrorOptions = {}) {
    super(oneLine(message), options.cause === undefined ? undefined : {cause: options.cause})
    this.name = 'LoraError'
    this.code = code
    this.exitCode = exitCode
    this.oclif = {exit: exitCode}
    if (options.suggestions) this.suggestions = options.suggestions
  }

  /** Plain object for `--json` error output. */
  toJSON(): {code: string; message: string; exitCode: number; suggestions?: string[]} {
    return {code: this.code, message: this.message, exitCode: this.exitCode, ...(this.suggestions ? {suggestions: this.suggestions} : {})}
  }
}

/** A file or directory that cannot be used: malformed, missing, wrong shape. Exit 2. */
export class InputError extends LoraError {
  constructor(code: string, message: string, options?: LoraErrorOptions) {
    super(code, message, EXIT_BAD_INPUT, options)
    this.name = 'InputError'
  }
}

/** Flags or arguments that contradict each other or are out of range. Exit 2. */
export class UsageError extends LoraError {
  constructor(code: string, message: string, options?: LoraErrorOptions) {
    super(code, message, EXIT_BAD_INPUT, options)
    this.name = 'UsageError'
  }
}

/** A quality or regression gate (`--max-loss`, `--max-regression`, `--tolerance`) failed. Exit 1. */
export class GateError extends LoraError {
  constructor(code: string, message: string, options?: LoraErrorOptions) {
    super(code, message, EXIT_GATE_FAILED, options)
    this.name = 'GateError'
  }
}

/** Collapse whitespace runs containing newlines so every message is one line. */
function oneLine(message: string): string {
  return message.replace(/\s*[\r\n]+\s*/g, ' ').trim()
}

/**
 * Turn a Node system error (ENOENT, EACCES, ENOSPC, …) raised while doing
 * `action` on `file` into an `InputError` with a readable one-line message.
 * Other errors are returned unchanged.
 */
export function describeSystemError(error: unknown, action: string, file: string): unknown {
  if (error instanceof LoraError) return error
  const code = (error as NodeJS.ErrnoException | undefined)?.code
  const problems: Record<string, string> = {
    ENOENT: 'no such file or directory',
    EACCES: 'permission denied',
    EPERM: 'operation not permitted',
    EISDIR: 'is a directory, expected a file',
    ENOTDIR: 'a path component is not a directory',
    ENOSPC: 'no space left on device',
    EDQUOT: 'disk quota exceeded',
    EEXIST: 'already exists',
    EROFS: 'read-only file system',
    EMFILE: 'too many open files',
    EFBIG: 'file too large for this file system',
    ELOOP: 'too many levels of symbolic links',
    ENAMETOOLONG: 'file name too long',
  }
  if (code && problems[code]) {
    return new InputError(`IO_${code}`, `${action} ${file}: ${problems[code]}`, {cause: error})
  }
  return error
}

/** `withFileContext` for synchronous file operations. */
export function withFileContextSync<T>(action: string, file: string, fn: () => T): T {
  try {
    return fn()
  } catch (error) {
    throw describeSystemError(error, action, file)
  }
}

/** Run `fn`, converting system errors into `InputError`s that name `file`. */
export async function withFileContext<T>(action: string, file: string, fn: () => Promise<T>): Promise<T> {
  try {
    return await fn()
  } catch (error) {
    throw describeSystemError(error, action, file)
  }
}
