/** Sizes as users write them (`512MB`, `4GiB`, `1.5 GB`, `1000`) and as we print them. */
import {UsageError} from './errors.js'

const UNITS: Readonly<Record<string, number>> = Object.freeze({
  b: 1,
  kb: 1e3,
  mb: 1e6,
  gb: 1e9,
  tb: 1e12,
  kib: 2 ** 10,
  mib: 2 ** 20,
  gib: 2 ** 30,
  tib: 2 ** 40,
  k: 1e3,
  m: 1e6,
  g: 1e9,
  t: 1e12,
})

/**
 * Parse a byte size: a number followed by an optional unit (B, KB, MB, GB, TB
 * are powers of 1000; KiB, MiB, GiB, TiB powers of 1024; case-insensitive).
 * @param what names the flag in the error, e.g. `--budget`
 * @throws UsageError for negative, non-numeric or unknown-unit sizes
 */
export function parseSize(text: string, what = 'size'): number {
  const m = /^\s*([+-]?\d+(?:\.\d+)?|[+-]?\.\d+)\s*([a-zA-Z]*)\s*$/.exec(text)
  if (!m) throw new UsageError('BAD_SIZE', `${what} "${text}" is not a size (expected e.g. 512MB, 4GiB or 1000000)`)
  const value = Number(m[1])
  const unit = m[2]!.toLowerCase()
  if (value < 0) throw new UsageError('BAD_SIZE', `${what} "${text}" is negative (expected a size of at least 0)`)
  const factor = unit === '' ? 1 : UNITS[unit]
  if (factor === undefined) {
    throw new UsageError('BAD_SIZE', `${what} "${text}" has unknown unit "${m[2]}" (expected B, KB, MB, GB, TB, KiB, MiB, GiB or TiB)`)
  }
  const bytes = Math.round(value * factor)
  if (!Number.isSafeInteger(bytes)) throw new UsageError('BAD_SIZE', `${what} "${text}" is too large`)
  return bytes
}

/** `1536` → `1.50 KiB`, `0` → `0 B`. */
export function formatBytes(bytes: number): string {
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB']
  let value = bytes
  let i = 0
  while (Math.abs(value) >= 1024 && i < units.length - 1) {
    value /= 1024
    i++
  }
  return i === 0 ? `${bytes} B` : `${value.toFixed(2)} ${units[i]}`
}
