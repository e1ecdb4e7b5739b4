import {existsSync} from 'node:fs'
import {join} from 'node:path'
import {suite} from 'uvu'
import * as assert from 'uvu/assert'
import {runCli, tempDir} from '../helpers/index.js'
import {synthesizeBase} from '../../src/core/synth/base.js'
import {normal, writeBase} from '../helpers/merge-fixtures.js'

const test = suite('commands/quantize')

const dir = tempDir('lora-quantize-cmd-')
const base = join(dir.path, 'base')

test.before(async () => {
  await writeBase(base, [
    {name: 'model.layers.0.q_proj.weight', shape: [64, 64], values: normal(64 * 64, 0.125, 'q')},
    {name: 'model.layers.0.o_proj.weight', shape: [64, 40], values: normal(64 * 40, 0.125, 'o')},
  ])
})
test.after(() => dir.cleanup())

test('--json result; tensors the scheme cannot hold are listed as kept', async () => {
  const llama = join(dir.path, 'llama')
  await synthesizeBase({out: llama, hidden: 64, intermediate: 40, layers: 1, vocab: 400, dtype: 'F16', seed: 0})
  const r = await runCli(['quantize', llama, '--out', join(dir.path, 'q.gguf'), '--scheme', 'q4_0', '--json'])
  assert.is(r.status, 0, r.stderr)
  const json = JSON.parse(r.stdout)
  assert.is(json.format, 'gguf')
  assert.is(json.quantized, 6)
  assert.equal(json.kept, [{name: 'model.layers.0.mlp.down_proj.weight', reason: 'row size (40) is not a multiple of Q4_0 block size (32)'}])
  assert.ok(existsSync(join(dir.path, 'q.gguf')))
  // a GGUF llama.cpp could not run is refused in one line, in both modes
  const bad = await runCli(['quantize', base, '--out', join(dir.path, 'bad.gguf'), '--scheme', 'q4_0'])
  assert.is(bad.status, 2)
  assert.match(bad.stderr, /^Error: read .*config\.json: hidden_size is missing, and llama\.cpp needs it\n$/)
  assert.is(JSON.parse((await runCli(['quantize', base, '--out', join(dir.path, 'bad.gguf'), '--scheme', 'q4_0', '--json'])).stdout).error.code, 'CONFIG_INVALID')
  assert.not.ok(existsSync(join(dir.path, 'bad.gguf')))
})

test('human output, and usage errors exit 2 in both modes without output', async () => {
  const ok = await runCli(['quantize', base, '--out', join(dir.path, 'nf4'), '--scheme', 'nf4', '--double-quant'])
  assert.is(ok.status, 0, ok.stderr)
  assert.match(ok.stdout, /2 tensors in nf4 \(block 64, double quant\)/)
  const bad = await runCli(['quantize', base, '--out', join(dir.path, 'x'), '--scheme', 'nf4', '--format', 'gguf'])
  assert.is(bad.status, 2)
  assert.match(bad.stderr, /^Error: --format gguf: nf4 is written as safetensors\n$/)
  const badJson = await runCli(['quantize', base, '--out', join(dir.path, 'x'), '--scheme', 'q4_0', '--block-size', '64', '--json'])
  assert.is(badJson.status, 2)
  assert.match(JSON.parse(badJson.stdout).error.message, /Q4_0 blocks are always 32 elements/)
  assert.not.ok(existsSync(join(dir.path, 'x')))
})

test.run()
