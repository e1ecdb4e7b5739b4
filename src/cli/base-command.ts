/**
 * The base of every `lora` command: JSON output, one-line errors with the
 * right exit status in both output modes, and warnings on stderr.
 */
import {Command, Errors} from '@oclif/core'
import {EXIT_BAD_INPUT, EXIT_INTERNAL, LoraError, UsageError, describeSystemError} from '../core/errors.js'

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

  override async catch(error: Error & {exitCode?: number}): Promise<void> {
    const isOclifError = error instanceof Errors.CLIError && !(error instanceof LoraError)
    if (error instanceof Errors.ExitError) throw error
    if (isOclifError) {
      // flag and argument parsing errors: usage problems, exit 2, with oclif's help hint
      const exit = (error as Errors.CLIError).oclif?.exit ?? EXIT_BAD_INPUT
      if (this.jsonEnabled()) {
        process.exitCode = exit
        this.logJson({error: {code: 'USAGE', message: error.message.split('\n')[0], exitCode: exit}})
        return
      }
      throw error
    }
    const described = describeSystemError(error, 'access', (error as NodeJS.ErrnoException).path ?? 'a file')
    const known = described instanceof LoraError ? described : undefined
    const exitCode = known?.exitCode ?? EXIT_INTERNAL
    const message = known ? known.message : `internal error: ${error.message ?? String(error)} (please report this; set LORA_DEBUG=1 for the stack)`
    if (process.env.LORA_DEBUG && error.stack) process.stderr.write(`${error.stack}\n`)
    if (this.jsonEnabled()) {
      process.exitCode = exitCode
      this.logJson({error: known ? known.toJSON() : {code: 'INTERNAL', message, exitCode}})
      return
    }
    process.stderr.write(`Error: ${message.split('\n')[0]}\n`)
    this.exit(exitCode)
  }
}

/** Parse a comma-separated list of positive integers (`8,16,32`). */
export function parseIntegerList(text: string, flag: string): number[] {
  const parts = text.split(',').map((s) => s.trim()).filter((s) => s.length > 0)
  const values = parts.map(Number)
  if (parts.length === 0 || values.some((v) => !Number.isSafeInteger(v) || v <= 0)) {
    throw new UsageError('BAD_FLAG', `${flag} expects comma-separated positive integers (got "${text}")`)
  }
  return values
}
