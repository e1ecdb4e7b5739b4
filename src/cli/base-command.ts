/**
 * The base of every `lora` command: JSON output, one-line errors with the
 * right exit status in both output modes, and warnings on stderr.
 */
import {Command, Errors} from '@oclif/core'
import {EXIT_BAD_INPUT, EXIT_INTERNAL, LoraError, describeSystemError} from '../core/errors.js'
import {usageLine} from './flags.js'

export abstract class LoraCommand extends Command {
  static override enableJsonFlag = true

  /** A warning for the user: stderr (never stdout); under --json only on a terminal. */
  protected warnUser(message: string): void {
    if (!this.jsonEnabled() || process.stderr.isTTY) process.stderr.write(`Warning: ${message}\n`)
  }

  /** Whether a progress bar may be drawn (stderr is a terminal). */
  protected get interactive(): boolean {
    return Boolean(process.stderr.isTTY)
  }

  /**
   * Every failure ends as one line: `Error: <message>` on stderr, or
   * `{"error": {code, message, exitCode}}` under --json. Flag and argument
   * errors (oclif's own, and the flag types' of `flags.ts`, which oclif wraps
   * in several lines) are usage errors, exit 2, reduced to one line that
   * names the flag and the reason; a system error names its path; anything
   * else is a bug, exit 3.
   */
  override async catch(error: Error & {exitCode?: number}): Promise<void> {
    if (error instanceof Errors.ExitError) throw error
    const failure = describeFailure(error)
    if (process.env.LORA_DEBUG && error.stack) process.stderr.write(`${error.stack}\n`)
    if (this.jsonEnabled()) {
      process.exitCode = failure.exitCode
      this.logJson({error: failure})
      return
    }
    process.stderr.write(`Error: ${failure.message}\n`)
    this.exit(failure.exitCode)
  }
}

/** What `--json` prints for a failure: its code, one line, the exit status (and suggestions). */
export function describeFailure(error: Error): {code: string; message: string; exitCode: number; suggestions?: string[]} {
  if (error instanceof Errors.CLIError && !(error instanceof LoraError)) {
    return {code: 'USAGE', message: usageLine(error.message), exitCode: error.oclif?.exit ?? EXIT_BAD_INPUT}
  }
  const described = describeSystemError(error, 'access', (error as NodeJS.ErrnoException).path ?? 'a file')
  if (!(described instanceof LoraError)) {
    return {code: 'INTERNAL', message: `internal error: ${oneLineText(error.message ?? String(error))} (please report this; set LORA_DEBUG=1 for the stack)`, exitCode: EXIT_INTERNAL}
  }
  // oclif rewrites the message of an error thrown while it parses a flag (several lines): one line again
  return {code: described.code, message: usageLine(described.message), exitCode: described.exitCode, ...(described.suggestions ? {suggestions: described.suggestions} : {})}
}

function oneLineText(text: string): string {
  return text.replace(/\s*[\r\n]+\s*/g, ' ').trim()
}
