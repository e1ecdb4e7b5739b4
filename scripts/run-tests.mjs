#!/usr/bin/env node
// Runs the compiled test suite (dist/test) as two uvu processes side by side: the real-engine suites
// (llama.cpp through node-llama-cpp, one thread each) in one, everything else in the other, so both
// cores work. Each shard's output is printed whole, one after the other, then the combined totals in
// uvu's own format ("Total:", "Passed:", "Skipped:"), which .ci/run reads. Exit status: non-zero when
// any shard failed. `--serial` runs one uvu process over everything instead.
import {spawn} from 'node:child_process'
import {dirname, join} from 'node:path'
import {fileURLToPath} from 'node:url'

const root = join(dirname(fileURLToPath(import.meta.url)), '..')
const uvu = join(root, 'node_modules', 'uvu', 'bin.js')
/** Test files that drive llama.cpp: the heaviest, and single-threaded, so they get a process of their own. */
const ENGINE_SUITES = 'gguf/llama-cpp-|engines/llama-cpp|e2e/llama-cpp-'

const shards = process.argv.includes('--serial')
  ? [{name: 'all', args: ['dist/test', '\\.test\\.js$']}]
  : [
      {name: 'real engines', args: ['dist/test', `(${ENGINE_SUITES}).*\\.test\\.js$`]},
      {name: 'everything else', args: ['dist/test', '\\.test\\.js$', '-i', ENGINE_SUITES]},
    ]

function run(shard) {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [uvu, ...shard.args], {cwd: root, stdio: ['ignore', 'pipe', 'pipe']})
    let out = ''
    child.stdout.on('data', (d) => (out += d))
    child.stderr.on('data', (d) => (out += d))
    child.on('close', (code, signal) => resolve({shard, out, code: code ?? (signal ? 1 : 0), signal}))
  })
}

const strip = (s) => s.replace(/\x1b\[[0-9;]*m/g, '')
const count = (text, label) => {
  const m = [...strip(text).matchAll(new RegExp(`^\\s*${label}:\\s*(\\d+)`, 'gm'))].pop()
  return m ? Number(m[1]) : undefined
}

const results = await Promise.all(shards.map(run))
let total = 0
let passed = 0
let skipped = 0
let failed = false
for (const r of results) {
  if (results.length > 1) process.stdout.write(`\n== tests: ${r.shard.name} ==\n`)
  process.stdout.write(r.out)
  const t = count(r.out, 'Total')
  const p = count(r.out, 'Passed')
  if (t === undefined || p === undefined) {
    console.log(`\n  run-tests: the "${r.shard.name}" shard ended without uvu's totals (exit ${r.code}${r.signal ? `, ${r.signal}` : ''})`)
    failed = true
    continue
  }
  total += t
  passed += p
  skipped += count(r.out, 'Skipped') ?? 0
  if (r.code !== 0) failed = true
}
if (results.length > 1) console.log(`\n== tests: all shards ==\n  Total:     ${total}\n  Passed:    ${passed}\n  Skipped:   ${skipped}`)
process.exit(failed || passed !== total ? 1 : 0)
