import {spawnSync} from 'node:child_process'
import {writeFileSync} from 'node:fs'
import {open} from 'node:fs/promises'
import {join} from 'node:path'
import {suite} from 'uvu'
import * as assert from 'uvu/assert'
import {planFile} from '../../src/core/formats/safetensors-header.js'
import {REAL_ADAPTERS, REPO_ROOT, realAdaptersMissing, runCli, skipIf, tempDir} from '../helpers/index.js'

const test = suite('command inspect')

test('--json on a synthetic adapter has the documented shape', async () => {
  const tmp = tempDir()
  try {
    const synth = await runCli(['synth', 'adapters', '--out', join(tmp.path, 'ad'), '--count', '4', '--hidden', '64', '--intermediate', '96', '--layers', '2', '--json'])
    assert.is(synth.status, 0, synth.stderr)
    assert.is(JSON.parse(synth.stdout).count, 4)
    const r = await runCli(['inspect', join(tmp.path, 'ad/adapter-0003'), '--json'])
    assert.is(r.status, 0, r.stderr)
    const report = JSON.parse(r.stdout)
    assert.equal(Object.keys(report).sort(), ['adapter', 'bytes', 'kind', 'metadata', 'path', 'tensors'])
    assert.is(report.kind, 'adapter')
    assert.equal(Object.keys(report.tensors[0]).sort(), ['bytes', 'dtype', 'name', 'shape'])
    const a = report.adapter
    assert.equal([a.r, a.lora_alpha, a.use_rslora, a.scaling, a.base_model], [16, 32, false, 2, 'synthetic/llama-h64-i96-l2'])
    assert.equal(a.target_modules, ['q_proj', 'k_proj', 'v_proj', 'o_proj'])
    assert.is(a.modules.length, 8)
    assert.equal(a.modules[0], {name: 'model.layers.0.self_attn.q_proj', kind: 'linear', in: 64, out: 64, r: 16, scaling: 2})
    // bytes is the file size on disk
    assert.is(report.bytes, report.tensors.reduce((s: number, t: {bytes: number}) => s + t.bytes, 0) + 8 + new DataView(new Uint8Array(spawnSync('head', ['-c', '8', join(tmp.path, 'ad/adapter-0003/adapter_model.safetensors')]).stdout).buffer).getUint32(0, true))
    const human = await runCli(['inspect', join(tmp.path, 'ad/adapter-0003')])
    assert.is(human.status, 0)
    assert.match(human.stdout, /r = 16, lora_alpha = 32, scaling = 2\.0000/)
    assert.match(human.stdout, /model\.layers\.1\.self_attn\.o_proj\s+linear\s+64\s+64\s+16/)
  } finally {
    tmp.cleanup()
  }
})

test('bad input: exit 2 and one line on stderr in plain mode, a JSON error under --json', async () => {
  const tmp = tempDir()
  try {
    const bad = join(tmp.path, 'bad.safetensors')
    writeFileSync(bad, Buffer.from('\r\n'))
    const plain = await runCli(['inspect', bad])
    assert.is(plain.status, 2)
    assert.is(plain.stdout, '')
    assert.is(plain.stderr.trim().split('\n').length, 1, plain.stderr)
    assert.match(plain.stderr, /^Error: read .*bad\.safetensors: file is 2 bytes, shorter than the 8-byte header length prefix\n$/)
    const json = await runCli(['inspect', bad, '--json'])
    assert.is(json.status, 2)
    const parsed = JSON.parse(json.stdout)
    assert.is(parsed.error.code, 'SAFETENSORS_TOO_SHORT')
    assert.is(parsed.error.exitCode, 2)
    const missing = await runCli(['inspect', join(tmp.path, 'nope')])
    assert.is(missing.status, 2)
    assert.match(missing.stderr, /^Error: read .*nope: no such file or directory\n$/)
  } finally {
    tmp.cleanup()
  }
})

test('usage errors exit 2 with one line naming the flag and the reason, never a stack trace', async () => {
  const r = await runCli(['synth', 'adapters', '--count', '3'])
  assert.is(r.status, 2)
  assert.is(r.stderr, 'Error: --out is required\n')
  const flag = await runCli(['synth', 'adapters', '--out', '/tmp/x', '--ranks', '8,-1'])
  assert.is(flag.status, 2)
  assert.is(flag.stderr, 'Error: --ranks expects comma-separated integers from 1 to 65536 (got "8,-1")\n')
  const json = await runCli(['synth', 'adapters', '--json'])
  assert.is(json.status, 2)
  assert.equal(JSON.parse(json.stdout).error, {code: 'USAGE', message: '--out is required', exitCode: 2})
})

test('inspect reads only the header of a 1 GB file: fast and under 100 MB of memory', async () => {
  const tmp = tempDir()
  try {
    const path = join(tmp.path, 'big.safetensors')
    const plan = planFile(Array.from({length: 64}, (_, i) => ({name: `layer.${i}.weight`, dtype: 'F16' as const, shape: [4096, 2048]})))
    const handle = await open(path, 'w')
    await handle.truncate(plan.fileSize)
    await handle.write(plan.headerBytes, 0, plan.headerBytes.length, 0)
    await handle.close()
    assert.ok(plan.fileSize > 2 ** 30)
    const script = `
      const {inspectPath} = await import(${JSON.stringify(join(REPO_ROOT, 'dist/src/core/inspect.js'))})
      const start = performance.now()
      const report = await inspectPath(${JSON.stringify(path)})
      const ms = performance.now() - start
      // this process's own peak (VmHWM): maxRSS also counts the parent's pages at the fork before exec
      const fs = await import('node:fs')
      const hwm = fs.existsSync('/proc/self/status') ? /VmHWM:\\s*(\\d+) kB/.exec(fs.readFileSync('/proc/self/status', 'utf8')) : null
      console.log(JSON.stringify({tensors: report.tensors.length, bytes: report.bytes, ms, maxRssKiB: hwm ? Number(hwm[1]) : process.resourceUsage().maxRSS}))
    `
    const child = spawnSync(process.execPath, ['--input-type=module', '-e', script], {encoding: 'utf8'})
    assert.is(child.status, 0, child.stderr)
    const result = JSON.parse(child.stdout)
    assert.is(result.tensors, 64)
    assert.is(result.bytes, plan.fileSize)
    assert.ok(result.maxRssKiB < 100 * 1024, `peak RSS ${result.maxRssKiB} KiB`)
    console.log(`\n  inspect of a ${(plan.fileSize / 2 ** 30).toFixed(2)} GiB file: ${result.ms.toFixed(1)} ms, peak RSS ${(result.maxRssKiB / 1024).toFixed(1)} MiB`)
  } finally {
    tmp.cleanup()
  }
})

{
  const realTest = skipIf(test, realAdaptersMissing())
  realTest('inspects the real tiny base model as a model folder', async () => {
    const r = await runCli(['inspect', join(REAL_ADAPTERS, '_base-models/tiny-gpt2-n_embd2'), '--json'])
    assert.is(r.status, 0, r.stderr)
    const report = JSON.parse(r.stdout)
    assert.is(report.kind, 'model')
    assert.is(report.tensors.length, 28)
    assert.is(report.bytes, 413296)
  })
}

test.run()
