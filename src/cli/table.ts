/** Plain-text tables for human output: left-aligned text, right-aligned numbers. */

export type Cell = string | number | bigint | null | undefined

/** Render rows under headers, columns separated by two spaces. */
export function renderTable(headers: readonly string[], rows: ReadonlyArray<readonly Cell[]>): string {
  const text = rows.map((row) => row.map((c) => (c === null || c === undefined ? '' : String(c))))
  const numeric = headers.map((_, i) => rows.length > 0 && rows.every((r) => typeof r[i] === 'number' || typeof r[i] === 'bigint' || r[i] === null || r[i] === undefined))
  const widths = headers.map((h, i) => Math.max(h.length, ...text.map((r) => (r[i] ?? '').length)))
  const line = (cells: readonly string[], isHeader: boolean) =>
    cells
      .map((c, i) => (numeric[i] && !isHeader ? c.padStart(widths[i]!) : c.padEnd(widths[i]!)))
      .join('  ')
      .trimEnd()
  return [line(headers, true), line(widths.map((w) => '-'.repeat(w)), true), ...text.map((r) => line(r, false))].join('\n')
}

/** `0.123456` → `0.1235` style fixed decimals, keeping tiny values readable. */
export function formatNumber(value: number, digits = 4): string {
  if (!Number.isFinite(value)) return String(value)
  if (value !== 0 && Math.abs(value) < 10 ** -digits) return value.toExponential(2)
  return value.toFixed(digits)
}
