/**
 * The `errors` metadata string of a shared-B pack, written with fixed-width
 * numbers: every per-slot value takes `ERROR_FIELD_WIDTH` characters (a
 * number with 10 significant digits, or `null`, padded with spaces, which
 * JSON allows between tokens). The header is planned with placeholder values
 * before the data is written and rewritten with the measured values after,
 * in the same room.
 */
import type {SharedBErrors} from './shared-b-file.js'

/** Room for `-1.234567890e-308` (17 characters). */
export const ERROR_FIELD_WIDTH = 17

/** A finite non-negative error as a fixed-width JSON token. */
function field(value: number | null): string {
  const text = value === null || !Number.isFinite(value) ? 'null' : String(Number(value.toPrecision(10)))
  const fitted = text.length <= ERROR_FIELD_WIDTH ? text : value!.toExponential(9)
  return fitted.padEnd(ERROR_FIELD_WIDTH, ' ')
}

/** `{"module": {"K": k, "errors": [e0, e1, …]}, …}` with fixed-width error values. */
export function formatErrorsMetadata(errors: SharedBErrors): string {
  const parts = Object.entries(errors).map(([name, {K, errors: list}]) => `${JSON.stringify(name)}:{"K":${K},"errors":[${list.map(field).join(',')}]}`)
  return `{${parts.join(',')}}`
}
