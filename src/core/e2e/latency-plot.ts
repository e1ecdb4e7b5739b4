/**
 * Latency CDFs of an end-to-end run as a plain, self-contained SVG: two
 * panels, time to first token and inter-token latency, one line per
 * strategy (`<g class="series" data-strategy="…" data-metric="ttft|itl">`),
 * x in ms (logarithmic when the samples span more than 20×), y the share of
 * samples at or below it.
 */
import {escapeXml} from '../bench/plot.js'

const PANEL_W = 380
const HEIGHT = 400
const MARGIN = {left: 60, right: 20, top: 60, bottom: 55}
const LEGEND_W = 150
const COLORS = ['#1f77b4', '#d62728', '#2ca02c', '#ff7f0e', '#9467bd', '#8c564b', '#e377c2', '#7f7f7f']

/** One strategy's latency samples (ms). */
export interface LatencySeries {
  readonly strategy: string
  readonly ttft: readonly number[]
  readonly itl: readonly number[]
}

/** The empirical CDF of samples: sorted values and the share at or below each. */
export function cdfPoints(samples: readonly number[]): Array<[number, number]> {
  const sorted = [...samples].sort((a, b) => a - b)
  return sorted.map((v, i) => [v, (i + 1) / sorted.length])
}

/** Render the two CDF panels. */
export function renderLatencyCdfSvg(series: readonly LatencySeries[], title: string): string {
  const width = 2 * PANEL_W + LEGEND_W
  const parts: string[] = [
    `<?xml version="1.0" encoding="UTF-8"?>`,
    `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${HEIGHT}" viewBox="0 0 ${width} ${HEIGHT}" font-family="sans-serif" font-size="12">`,
    `<title>${escapeXml(title)}</title>`,
    `<rect width="${width}" height="${HEIGHT}" fill="#ffffff"/>`,
    `<text x="${width / 2}" y="22" text-anchor="middle" font-size="14">${escapeXml(title)}</text>`,
  ]
  ;(['ttft', 'itl'] as const).forEach((metric, p) => parts.push(...panel(series, metric, p * PANEL_W)))
  series.forEach((s, i) => {
    const color = COLORS[i % COLORS.length]!
    const x = 2 * PANEL_W + 10
    const y = MARGIN.top + 10 + i * 20
    parts.push(`<g class="legend"><line x1="${x}" y1="${y}" x2="${x + 25}" y2="${y}" stroke="${color}" stroke-width="2"/><text x="${x + 31}" y="${y + 4}">${escapeXml(s.strategy)}</text></g>`)
  })
  parts.push('</svg>')
  return parts.join('\n') + '\n'
}

function panel(series: readonly LatencySeries[], metric: 'ttft' | 'itl', left: number): string[] {
  const all = series.flatMap((s) => s[metric]).filter((v) => v > 0 && Number.isFinite(v))
  const lo = all.length ? Math.min(...all) : 1
  const hi = all.length ? Math.max(...all) : 10
  const log = hi / lo > 20
  const plotW = PANEL_W - MARGIN.left - MARGIN.right
  const plotH = HEIGHT - MARGIN.top - MARGIN.bottom
  const x0 = left + MARGIN.left
  const xLo = log ? 10 ** Math.floor(Math.log10(lo)) : 0
  const xHi = log ? 10 ** Math.ceil(Math.log10(hi)) : hi * 1.05 || 1
  const X = (v: number) => x0 + (log ? (Math.log10(Math.max(v, xLo)) - Math.log10(xLo)) / (Math.log10(xHi) - Math.log10(xLo)) : (v - xLo) / (xHi - xLo)) * plotW
  const Y = (q: number) => MARGIN.top + plotH - q * plotH
  const f = (v: number) => v.toFixed(1)
  const out: string[] = []
  out.push(`<text x="${x0 + plotW / 2}" y="${MARGIN.top - 12}" text-anchor="middle">${metric === 'ttft' ? 'time to first token' : 'inter-token latency'}</text>`)
  out.push(`<g class="axes" stroke="#333" fill="none"><line x1="${x0}" y1="${Y(0)}" x2="${x0 + plotW}" y2="${Y(0)}"/><line x1="${x0}" y1="${Y(0)}" x2="${x0}" y2="${Y(1)}"/></g>`)
  for (const q of [0, 0.25, 0.5, 0.75, 0.9, 1]) out.push(`<g class="ytick"><line x1="${x0 - 4}" y1="${f(Y(q))}" x2="${x0 + plotW}" y2="${f(Y(q))}" stroke="#eee"/><text x="${x0 - 6}" y="${f(Y(q) + 4)}" text-anchor="end">${q}</text></g>`)
  out.push(`<g class="ytick"><line x1="${x0}" y1="${f(Y(0.99))}" x2="${x0 + plotW}" y2="${f(Y(0.99))}" stroke="#bbb" stroke-dasharray="4 3"/><text x="${x0 + plotW - 2}" y="${f(Y(0.99) + 12)}" text-anchor="end" font-size="10" fill="#777">p99</text></g>`)
  const ticks = log ? Array.from({length: Math.round(Math.log10(xHi / xLo)) + 1}, (_, i) => xLo * 10 ** i) : Array.from({length: 5}, (_, i) => xLo + ((xHi - xLo) * i) / 4)
  for (const v of ticks) out.push(`<g class="xtick"><line x1="${f(X(v))}" y1="${Y(0)}" x2="${f(X(v))}" y2="${Y(0) + 5}" stroke="#333"/><text x="${f(X(v))}" y="${Y(0) + 18}" text-anchor="middle">${v >= 100 || Number.isInteger(v) ? Math.round(v) : v.toFixed(1)}</text></g>`)
  out.push(`<text x="${x0 + plotW / 2}" y="${HEIGHT - 15}" text-anchor="middle">ms${log ? ' (log scale)' : ''}</text>`)
  series.forEach((s, i) => {
    const color = COLORS[i % COLORS.length]!
    const pts = cdfPoints(s[metric]).map(([v, q]) => `${f(X(v))},${f(Y(q))}`)
    out.push(`<g class="series" data-strategy="${escapeXml(s.strategy)}" data-metric="${metric}" stroke="${color}" fill="none"><polyline points="${pts.join(' ')}" stroke-width="2"/></g>`)
  })
  return out
}
