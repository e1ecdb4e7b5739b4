/**
 * The flag types of every `lora` command, with their ranges, in one place.
 * A value out of range, not a number, or an empty path is refused while
 * oclif parses, with one line naming the flag, the rule and what was given
 * (`--count must be an integer from 1 to 1000000 (got "0")`); `LoraCommand`
 * prints it as the one `Error:` line, or as `{"error": {code, message}}`
 * under `--json`.
 *
 * Bounds are named constants with the reason for them. They stop what no
 * real run asks for (a hidden size of a billion); what fits depends on the
 * machine, and is estimated up front by `core/resources.ts`.
 */
import {stripVTControlCharacters} from 'node:util'
import {Flags} from '@oclif/core'
import {UsageError} from '../core/errors.js'
import {parseSize} from '../core/units.js'

/** Hidden and intermediate sizes: real models stay below 2^17 (Llama 3 405B: 16384 / 53248). */
export const MAX_MODEL_DIM = 1 << 20
/** Decoder blocks: real models have at most a few hundred. */
export const MAX_LAYERS = 1024
/** Attention heads: past any model's. */
export const MAX_HEADS = 4096
/** Vocabulary sizes: real ones are below 2^20. */
export const MAX_VOCAB = 1 << 24
/** LoRA ranks and shared widths K: beyond the dims of any real projection. */
export const MAX_RANK = 1 << 16
/** Adapters in one run (synth, bench, slots): slots are int32 indices in the serving graphs; what fits is estimated per run. */
export const MAX_ADAPTERS = 2 ** 31 - 1
/** Requests per step, tokens per request, probe rows: rows are int32 indices in the graphs; what fits is estimated per run. */
export const MAX_ROWS = 2 ** 31 - 1
/** Threads: more than any machine has cores. */
export const MAX_THREADS = 4096
/** Timing rounds and steps, cache sizes. */
export const MAX_REPEATS = 1_000_000
/** Seeds: the generator mixes 53-bit integers exactly. */
export const MAX_SEED = Number.MAX_SAFE_INTEGER
/** Merge and generation weights: an adapter scaled past a thousand times is no model any more (and overflows f16). */
export const MAX_ADAPTER_WEIGHT = 1000
/** lora_alpha of synthetic adapters: scalings past a million times the rank make no adapter. */
export const MAX_ALPHA = 1e6
/** Sampling temperatures: past a thousand every distribution is uniform to float precision. */
export const MAX_TEMPERATURE = 1000
/** Block and group sizes of the quantization schemes (each scheme checks its own). */
export const MAX_BLOCK_SIZE = 1 << 20

interface IntegerRange {
  min?: number
  max?: number
}

interface NumberRange {
  /** Smallest value allowed. */
  min?: number
  /** Largest value allowed. */
  max?: number
  /** Values must be greater than this. */
  above?: number
  /** Values must be less than this. */
  below?: number
}

const fmt = (v: number) => String(v)

/** `an integer from 1 to 1000` (or `of at least 1`) */
function integerRule(r: IntegerRange): string {
  if (r.min !== undefined && r.max !== undefined) return `an integer from ${fmt(r.min)} to ${fmt(r.max)}`
  if (r.min !== undefined) return `an integer of at least ${fmt(r.min)}`
  if (r.max !== undefined) return `an integer of at most ${fmt(r.max)}`
  return 'an integer'
}

function numberRule(r: NumberRange): string {
  const parts: string[] = []
  if (r.min !== undefined) parts.push(`≥ ${r.min}`)
  if (r.above !== undefined) parts.push(`> ${r.above}`)
  if (r.max !== undefined) parts.push(`≤ ${r.max}`)
  if (r.below !== undefined) parts.push(`< ${r.below}`)
  return parts.length ? `a number ${parts.join(' and ')}` : 'a finite number'
}

/**
 * Parse an integer flag value (decimal digits, an optional sign; no
 * exponents, fractions or hex) within `range`.
 * @throws UsageError BAD_FLAG naming the flag and the rule
 */
export function parseIntegerValue(text: string, flag: string, range: IntegerRange = {}): number {
  const value = /^\s*[+-]?\d+\s*$/.test(text) ? Number(text) : Number.NaN
  if (!Number.isSafeInteger(value) || (range.min !== undefined && value < range.min) || (range.max !== undefined && value > range.max)) {
    throw new UsageError('BAD_FLAG', `${flag} must be ${integerRule(range)} (got "${text}")`)
  }
  return value
}

/**
 * Parse a real-number flag value (finite; NaN, Infinity and empty text refused) within `range`.
 * @throws UsageError BAD_FLAG naming the flag and the rule
 */
export function parseNumberValue(text: string, flag: string, range: NumberRange = {}): number {
  // decimal notation only: Number() would also take "0x10", "0b1" and "Infinity"
  const value = /^\s*[+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?\s*$/.test(text) ? Number(text) : Number.NaN
  const ok =
    Number.isFinite(value) &&
    (range.min === undefined || value >= range.min) &&
    (range.max === undefined || value <= range.max) &&
    (range.above === undefined || value > range.above) &&
    (range.below === undefined || value < range.below)
  if (!ok) throw new UsageError('BAD_FLAG', `${flag} must be ${numberRule(range)} (got "${text}")`)
  return value
}

/**
 * Parse a comma-separated list of integers within `range` (`8,16,32`).
 * @throws UsageError BAD_FLAG
 */
export function parseIntegerListValue(text: string, flag: string, range: IntegerRange = {}): number[] {
  const parts = text.split(',').map((s) => s.trim())
  if (parts.length === 0 || parts.some((p) => p === '')) throw new UsageError('BAD_FLAG', `${flag} expects comma-separated integers (got "${text}")`)
  return parts.map((p) => {
    try {
      return parseIntegerValue(p, flag, range)
    } catch {
      throw new UsageError('BAD_FLAG', `${flag} expects comma-separated ${integerRule(range).replace(/^an integer/, 'integers')} (got "${text}")`)
    }
  })
}

/**
 * An integer flag type within `[min, max]`: `integer({min: 1})({description, default: 8})`
 * (the second call takes oclif's flag options: description, default, required, multiple, exclusive, …).
 */
export function integer(range: IntegerRange = {}) {
  return Flags.custom<number>({helpValue: '<int>', parse: async (input, _ctx, opts) => parseIntegerValue(input, `--${opts.name}`, range)})
}

/** A finite real-number flag type within a range. */
export function number(range: NumberRange = {}) {
  return Flags.custom<number>({helpValue: '<number>', parse: async (input, _ctx, opts) => parseNumberValue(input, `--${opts.name}`, range)})
}

/** A comma-separated list of integers within `[min, max]` (`8,16,32`). */
export function integerList(range: IntegerRange = {}) {
  return Flags.custom<number[]>({helpValue: '<int,…>', parse: async (input, _ctx, opts) => parseIntegerListValue(input, `--${opts.name}`, range)})
}

/** A positive byte size (`500MB`, `2GiB`, or bytes). */
export function size() {
  return Flags.custom<number>({
    helpValue: '<size>',
    parse: async (input, _ctx, opts) => {
      const bytes = parseSize(input, `--${opts.name}`)
      if (bytes <= 0) throw new UsageError('BAD_SIZE', `--${opts.name} "${input}" must be a positive size`)
      return bytes
    },
  })
}

/** A path (file or folder): an empty value or a NUL character is refused. */
export function path() {
  return Flags.custom<string>({helpValue: '<path>', parse: async (input, _ctx, opts) => nonEmptyPath(input, `--${opts.name}`)})
}

function nonEmptyPath(input: string, flag: string): string {
  if (input.trim() === '') throw new UsageError('BAD_FLAG', `${flag} needs a path (got an empty value)`)
  if (input.includes('\0')) throw new UsageError('BAD_FLAG', `${flag}: a path cannot hold a NUL character`)
  return input
}

/** The seed of the random streams, 0 … 2^53 − 1 (default 0). */
export function seedFlag(description: string) {
  return integer({min: 0, max: MAX_SEED})({description, default: 0})
}

/**
 * Turn a usage error's text, as oclif builds it (`Parsing --count \n\t…\nSee
 * more help with --help`, `The following error occurred:\n  …`), into one
 * line that names the flag and the reason.
 */
export function usageLine(message: string): string {
  const lines = stripVTControlCharacters(message)
    .split('\n')
    .map((l) => l.trim())
    .filter((l) => l !== '' && !/^See more help with --help$/.test(l))
  if (lines.length === 0) return 'invalid usage'
  let head: string[] = []
  if (/^Parsing --\S+$/.test(lines[0]!)) {
    const flag = lines.shift()!.slice('Parsing '.length)
    head = lines.some((l) => l.includes(flag)) ? [] : [`${flag}:`]
  } else if (/^The following errors? occurred:$/.test(lines[0]!)) lines.shift()
  // a line ending in ":" introduces the next; separate reasons are joined with "; "
  let text = head.join(' ')
  for (const line of lines) text += text === '' ? line : text.endsWith(':') ? ` ${line}` : `; ${line}`
  return text.replace(/\s{2,}/g, ' ').replace(/\bMissing required flag (\S+)/g, '--$1 is required')
}
