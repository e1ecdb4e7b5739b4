import {spawn} from 'node:child_process'
import {existsSync, readdirSync, statSync, writeFileSync} from 'node:fs'
import {join} from 'node:path'
import {suite} from 'uvu'
import * as assert from 'uvu/assert'
import {wrap} from '../../src/cli/render-demo.js'
import {REPO_ROOT, runCli, tempDir} from '../helpers/index.js'

const test = suite('command demo')

const SMALL = ['demo', '--size', 'small']
const STEPS = ['synth', 'pack', 'compress', 'merge', 'bench']

test('--json: stdout is one JSON document with every step\'s report; the temporary folder is removed', async () => {
  const r = await runCli([...SMALL, '--json'])
  assert.is(r.status, 0, r.stderr)
  const report = JSON.parse(r.stdout)
  assert.equal(Object.keys(report.steps), STEPS)
  assert.equal(Object.keys(report.summary.takeaways), STEPS)
  assert.is(report.kept, false)
  assert.not.ok(existsSync(report.out), `${report.out} should be removed`)
  assert.ok(report.steps.pack.result.bytes_out > 0 && report.steps.compress.choice.K > 0)
  assert.ok(report.steps.bench.report.results.length > 0)
  assert.is(report.settings.adapters, 12)
})

test('--out keeps the artifacts; the human output explains each step, shows the tables and the summary', async () => {
  const tmp = tempDir()
  try {
    const out = join(tmp.path, 'demo')
    const r = await runCli([...SMALL, '--out', out])
    assert.is(r.status, 0, r.stderr)
    for (const n of [1, 2, 3, 4, 5]) assert.match(r.stdout, new RegExp(`== ${n}/5 `))
    assert.match(r.stdout, /K\s+before\s+after\s+saved\s+error mean\s+error max/)
    assert.match(r.stdout, /chosen: K = \d+, the smallest K whose largest per-adapter error is ≤ 0.2/)
    assert.match(r.stdout, /scheme\s+strategy\s+weight rel_err\s+delta snr\s+adapter retained/)
    assert.match(r.stdout, /strategy\s+adapters\s+tokens\/s/)
    assert.match(r.stdout, /== summary/)
    assert.ok(r.stdout.includes(`Files in ${out}:`))
    assert.equal(readdirSync(out).sort(), ['adapters', 'base', 'bench.json', 'bench.svg', 'merged-nf4', 'merged-q4_0.gguf', 'pack.safetensors', 'shared-b.safetensors'])
    assert.is(r.stderr, '', 'no progress bars or warnings off a terminal')

    const again = await runCli([...SMALL, '--out', out])
    assert.is(again.status, 2)
    assert.match(again.stderr, /^Error: demo --out .*: the folder is not empty .*--force/)
    assert.is(again.stdout, '')
    const json = await runCli([...SMALL, '--out', out, '--json'])
    assert.is(json.status, 2)
    assert.is(JSON.parse(json.stdout).error.code, 'OUTPUT_EXISTS')
  } finally {
    tmp.cleanup()
  }
})

test('--force writes into a non-empty folder and leaves other files alone', async () => {
  const tmp = tempDir()
  try {
    writeFileSync(join(tmp.path, 'notes.txt'), 'mine')
    writeFileSync(join(tmp.path, 'pack.safetensors'), 'an older pack')
    const r = await runCli([...SMALL, '--out', tmp.path, '--force', '--json'])
    assert.is(r.status, 0, r.stderr)
    assert.ok(existsSync(join(tmp.path, 'notes.txt')))
    const report = JSON.parse(r.stdout)
    assert.is(report.steps.pack.result.out, join(tmp.path, 'pack.safetensors'))
    assert.is(statSync(join(tmp.path, 'pack.safetensors')).size, report.steps.pack.bytes.file, 'the older pack was replaced')
  } finally {
    tmp.cleanup()
  }
})

test('SIGINT removes the temporary folder', async () => {
  const child = spawn(process.execPath, [join(REPO_ROOT, 'bin/run.js'), ...SMALL], {cwd: REPO_ROOT, env: {...process.env, NO_COLOR: '1'}})
  let stdout = ''
  let folder: string | undefined
  const exited = new Promise<{code: number | null; signal: NodeJS.Signals | null}>((resolve) => child.on('exit', (code, signal) => resolve({code, signal})))
  await new Promise<void>((resolve) => {
    child.stdout.on('data', (chunk: Buffer) => {
      stdout += chunk.toString()
      const m = /Files go to (\S+), a temporary folder/.exec(stdout)
      if (m && !folder) {
        folder = m[1]!
        child.kill('SIGINT')
        resolve()
      }
    })
    child.on('exit', () => resolve())
  })
  const {code, signal} = await exited
  assert.ok(folder, `the demo announced its folder: ${stdout}`)
  assert.ok(signal === 'SIGINT' || code === 130, `interrupted (code ${code}, signal ${signal})`)
  assert.not.match(stdout, /== summary/)
  assert.not.ok(existsSync(folder!), `${folder} should be removed`)
})

test('--out naming a file: exit 2', async () => {
  const tmp = tempDir()
  try {
    const file = join(tmp.path, 'f')
    writeFileSync(file, 'x')
    const r = await runCli([...SMALL, '--out', file])
    assert.is(r.status, 2)
    assert.match(r.stderr, /is not a folder/)
  } finally {
    tmp.cleanup()
  }
})

test('wrap: prose broken at spaces into lines of at most 100 characters, continuation indented', async () => {
  const words = Array.from({length: 40}, (_, i) => `w${String(i).padStart(3, '0')}`)
  const lines = wrap(words.join(' '), '  ').split('\n')
  assert.equal(lines, [words.slice(0, 20).join(' '), `  ${words.slice(20, 39).join(' ')}`, `  ${words[39]}`])
  assert.is(wrap('x'.repeat(120)), 'x'.repeat(120))
})

test.run()
