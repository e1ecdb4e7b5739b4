/**
 * Throughput vs number of adapters as a plain, self-contained SVG: log-scale
 * x, one polyline per strategy (`<g class="series" data-strategy="…">`), a
 * legend, optional vertical markers (`<g class="marker">`: a crossover), no
 * scripts or external references.
 */
import type {BenchResult} from './report.js'

const WIDTH = 760
const HEIGHT = 440
const MARGIN = {left: 80, right: 170, top: 40, bottom: 60}
const COLORS = ['#1f77b4', '#d62728', '#2ca02c', '#ff7f0e', '#9467bd', '#8c564b', '#e377c2', '#7f7f7f']

/** A dashed vertical line at an adapter count, with a label. */
export interface PlotMarker {
  adapters: number
  label: string
}

/** Render the plot; the y axis is logarithmic when throughputs span more than 20×. */
export function renderThroughputSvg(results: readonly Pick<BenchResult, 'strategy' | 'adapters' | 'tokens_per_s'>[], title: string, options: {markers?: readonly PlotMarker[]; xLabel?: string; yLabel?: string} = {}): string {
  const strategies = [...new Set(results.map((r) => r.strategy))]
  const xs = results.map((r) => r.adapters)
  const ys = results.map((r) => r.tokens_per_s).filter((v) => v > 0 && Number.isFinite(v))
  const xMin = Math.min(...xs)
  const xMax = Math.max(...xs)
  const yMinRaw = ys.length ? Math.min(...ys) : 1
  const yMaxRaw = ys.length ? Math.max(...ys) : 1
  const logY = yMaxRaw / yMinRaw > 20
  const plotW = WIDTH - MARGIN.left - MARGIN.right
  const plotH = HEIGHT - MARGIN.top - MARGIN.bottom
  const lx = (v: number) => Math.log10(v)
  const xSpan = lx(xMax) - lx(xMin) || 1
  const X = (v: number) => MARGIN.left + (xMax === xMin ? plotW / 2 : ((lx(v) - lx(xMin)) / xSpan) * plotW)
  const yLo = logY ? 10 ** Math.floor(Math.log10(yMinRaw)) : 0
  const yHi = logY ? 10 ** Math.ceil(Math.log10(yMaxRaw)) : niceCeil(yMaxRaw * 1.05)
  const Y = (v: number) => MARGIN.top + plotH - (logY ? (Math.log10(Math.max(v, yLo)) - Math.log10(yLo)) / (Math.log10(yHi) - Math.log10(yLo)) : (v - yLo) / (yHi - yLo)) * plotH
  const parts: string[] = []
  parts.push(`<?xml version="1.0" encoding="UTF-8"?>`)
  parts.push(`<svg xmlns="http://www.w3.org/2000/svg" width="${WIDTH}" height="${HEIGHT}" viewBox="0 0 ${WIDTH} ${HEIGHT}" font-family="sans-serif" font-size="12">`)
  parts.push(`<title>${escapeXml(title)}</title>`)
  parts.push(`<rect width="${WIDTH}" height="${HEIGHT}" fill="#ffffff"/>`)
  parts.push(`<text x="${WIDTH / 2}" y="22" text-anchor="middle" font-size="14">${escapeXml(title)}</text>`)
  // axes and ticks
  parts.push(`<g class="axes" stroke="#333" fill="none"><line x1="${MARGIN.left}" y1="${MARGIN.top + plotH}" x2="${MARGIN.left + plotW}" y2="${MARGIN.top + plotH}"/><line x1="${MARGIN.left}" y1="${MARGIN.top}" x2="${MARGIN.left}" y2="${MARGIN.top + plotH}"/></g>`)
  for (const v of [...new Set(xs)].sort((a, b) => a - b)) {
    parts.push(`<g class="xtick"><line x1="${f(X(v))}" y1="${MARGIN.top + plotH}" x2="${f(X(v))}" y2="${MARGIN.top + plotH + 5}" stroke="#333"/><text x="${f(X(v))}" y="${MARGIN.top + plotH + 18}" text-anchor="middle">${v}</text></g>`)
  }
  for (const v of yTicks(yLo, yHi, logY)) {
    parts.push(`<g class="ytick"><line x1="${MARGIN.left - 5}" y1="${f(Y(v))}" x2="${MARGIN.left + plotW}" y2="${f(Y(v))}" stroke="#ddd"/><text x="${MARGIN.left - 8}" y="${f(Y(v) + 4)}" text-anchor="end">${formatTick(v)}</text></g>`)
  }
  parts.push(`<text x="${MARGIN.left + plotW / 2}" y="${HEIGHT - 15}" text-anchor="middle">${escapeXml(options.xLabel ?? 'adapters')} (log scale)</text>`)
  parts.push(`<text transform="translate(18 ${MARGIN.top + plotH / 2}) rotate(-90)" text-anchor="middle">${escapeXml(options.yLabel ?? 'tokens/s')}${logY ? ' (log scale)' : ''}</text>`)
  for (const m of options.markers ?? []) {
    if (!(m.adapters >= xMin && m.adapters <= xMax)) continue
    const x = f(X(m.adapters))
    parts.push(`<g class="marker" data-adapters="${m.adapters}"><line x1="${x}" y1="${MARGIN.top}" x2="${x}" y2="${MARGIN.top + plotH}" stroke="#555" stroke-dasharray="5 4"/><text x="${x}" y="${MARGIN.top - 6}" text-anchor="middle" font-size="11">${escapeXml(m.label)}</text></g>`)
  }
  strategies.forEach((s, i) => {
    const color = COLORS[i % COLORS.length]!
    const pts = results.filter((r) => r.strategy === s && r.tokens_per_s > 0).sort((a, b) => a.adapters - b.adapters)
    const coords = pts.map((r) => `${f(X(r.adapters))},${f(Y(r.tokens_per_s))}`).join(' ')
    parts.push(`<g class="series" data-strategy="${escapeXml(s)}" stroke="${color}" fill="${color}">`)
    parts.push(`<polyline points="${coords}" fill="none" stroke-width="2"/>`)
    for (const r of pts) parts.push(`<circle cx="${f(X(r.adapters))}" cy="${f(Y(r.tokens_per_s))}" r="3"><title>${escapeXml(`${s}, ${r.adapters} adapters: ${r.tokens_per_s.toFixed(1)} tokens/s`)}</title></circle>`)
    parts.push(`</g>`)
    const ly = MARGIN.top + 10 + i * 20
    parts.push(`<g class="legend"><line x1="${WIDTH - MARGIN.right + 15}" y1="${ly}" x2="${WIDTH - MARGIN.right + 40}" y2="${ly}" stroke="${color}" stroke-width="2"/><text x="${WIDTH - MARGIN.right + 46}" y="${ly + 4}">${escapeXml(s)}</text></g>`)
  })
  parts.push(`</svg>`)
  return parts.join('\n') + '\n'
}

function f(v: number): string {
  return v.toFixed(1)
}

function niceCeil(v: number): number {
  if (!(v > 0)) return 1
  const p = 10 ** Math.floor(Math.log10(v))
  for (const m of [1, 2, 2.5, 5, 10]) if (m * p >= v) return m * p
  return 10 * p
}

function yTicks(lo: number, hi: number, log: boolean): number[] {
  if (log) {
    const out: number[] = []
    for (let v = lo; v <= hi * 1.0001; v *= 10) out.push(v)
    return out
  }
  return Array.from({length: 6}, (_, i) => lo + ((hi - lo) * i) / 5)
}

function formatTick(v: number): string {
  if (v >= 1e6) return `${(v / 1e6).toFixed(1)}M`
  if (v >= 1e4) return `${(v / 1e3).toFixed(0)}k`
  return Number.isInteger(v) ? String(v) : v.toFixed(1)
}

/** Escape text for XML content and attributes. */
export function escapeXml(text: string): string {
  return text.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;').replace(/'/g, '&apos;')
}
