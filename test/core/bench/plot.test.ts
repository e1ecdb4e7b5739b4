import {spawnSync} from 'node:child_process'
import {writeFileSync} from 'node:fs'
import {join} from 'node:path'
import {suite} from 'uvu'
import * as assert from 'uvu/assert'
import {renderThroughputSvg} from '../../../src/core/bench/plot.js'
import type {BenchResult} from '../../../src/core/bench/report.js'
import {skipIf, tempDir} from '../../helpers/index.js'

const test = suite('bench plot')

const results: BenchResult[] = []
for (const adapters of [1, 4, 16, 64, 256, 1000]) {
  for (const [strategy, tps] of [['base', 1000], ['gather', 900], ['mask', 4000 / adapters], ['a<b&"c"', 500]] as const) {
    results.push({strategy, adapters, tokens_per_s: tps, latency_ms: {mean: 1, p50: 1, p99: 1}, relative_to_base: tps / 1000, weight_bytes: 0, max_abs_error: 0, samples: 1})
  }
}

/** Minimal well-formedness check: tags balance, attributes quoted, no raw '<' or '&' in text. */
function checkWellFormed(xml: string): void {
  const stack: string[] = []
  const body = xml.replace(/^<\?xml[^?]*\?>\s*/, '')
  const re = /<(\/?)([A-Za-z][\w:-]*)((?:\s+[\w:-]+="[^"<]*")*)\s*(\/?)>|([^<]+)/g
  let consumed = 0
  for (let m = re.exec(body); m; m = re.exec(body)) {
    assert.is(m.index, consumed, `unparsable markup at ${consumed}: ${body.slice(consumed, consumed + 40)}`)
    consumed = re.lastIndex
    if (m[5] !== undefined) {
      assert.not.match(m[5], /&(?!(amp|lt|gt|quot|apos);)/, 'raw & in text')
      continue
    }
    if (m[1]) assert.is(stack.pop(), m[2], `closing ${m[2]}`)
    else if (!m[4]) stack.push(m[2]!)
  }
  assert.is(consumed, body.length)
  assert.equal(stack, [])
}

test('one series per strategy, log-scale x ticks at the adapter counts, escaped names, well-formed XML', () => {
  const svg = renderThroughputSvg(results, 'sweep <test>')
  checkWellFormed(svg)
  const series = [...svg.matchAll(/<g class="series" data-strategy="([^"]*)"/g)].map((m) => m[1])
  assert.equal(series, ['base', 'gather', 'mask', 'a&lt;b&amp;&quot;c&quot;'])
  const polylines = [...svg.matchAll(/<polyline points="([^"]*)"/g)].map((m) => m[1]!.split(' ').length)
  assert.equal(polylines, [6, 6, 6, 6])
  // log x: 1, 4, 16, 64 are evenly spaced (each ×4)
  const xs = [...svg.matchAll(/<g class="xtick"><line x1="([\d.]+)"/g)].map((m) => Number(m[1]))
  assert.is(xs.length, 6)
  assert.ok(Math.abs(xs[1]! - xs[0]! - (xs[2]! - xs[1]!)) < 0.2 && Math.abs(xs[2]! - xs[1]! - (xs[3]! - xs[2]!)) < 0.2)
  assert.match(svg, /tokens\/s \(log scale\)/, 'mask spans 4000…4: log y')
  assert.not.match(svg, /<script|href=/)
})

test('markers: a dashed vertical line with its label at the marked count, none outside the x range', () => {
  const svg = renderThroughputSvg(results, 'x', {markers: [{adapters: 9, label: 'mask < gather from ≈ 9'}, {adapters: 5000, label: 'off the axis'}]})
  checkWellFormed(svg)
  const markers = [...svg.matchAll(/<g class="marker" data-adapters="(\d+)"><line x1="([\d.]+)"[^>]*stroke-dasharray[^>]*\/><text[^>]*>([^<]*)<\/text><\/g>/g)]
  assert.equal(markers.map((m) => [m[1], m[3]]), [['9', 'mask &lt; gather from ≈ 9']])
  // log x: 9 lies between the ticks of 4 and 16, at log(9/4)/log(4) of the way
  const xs = [...svg.matchAll(/<g class="xtick"><line x1="([\d.]+)"/g)].map((m) => Number(m[1]))
  const want = xs[1]! + ((xs[2]! - xs[1]!) * Math.log(9 / 4)) / Math.log(4)
  assert.ok(Math.abs(Number(markers[0]![2]) - want) < 0.1)
})

const python3 = spawnSync('python3', ['-c', 'import xml.etree.ElementTree'], {encoding: 'utf8'}).status === 0
skipIf(test, python3 ? undefined : 'python3 (with xml.etree) is absent')('python3 parses it as XML', () => {
  const tmp = tempDir()
  try {
    const path = join(tmp.path, 'p.svg')
    writeFileSync(path, renderThroughputSvg(results, 'x'))
    const r = spawnSync('python3', ['-c', 'import sys, xml.etree.ElementTree as E; t = E.parse(sys.argv[1]); ns = "{http://www.w3.org/2000/svg}"; print(len([g for g in t.iter(ns + "g") if g.get("class") == "series"]))', path], {encoding: 'utf8'})
    assert.is(r.status, 0, r.stderr)
    assert.is(r.stdout.trim(), '4')
  } finally {
    tmp.cleanup()
  }
})

test.run()
