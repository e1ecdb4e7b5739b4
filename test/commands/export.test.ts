/**
 * `lora export` and `lora inspect` on GGUF files, as a user runs them: the
 * --json shapes (documented in docs/formats.md), the human tables, and
 * exit 2 with one line in both output modes.
 */
import {existsSync} from 'node:fs'
import {join} from 'node:path'
import {suite} from 'uvu'
import * as assert from 'uvu/assert'
import {runCli, tempDir} from '../helpers/index.js'

const test = suite('commands/export and inspect on GGUF')

const dir = tempDir('lora-export-cmd-')
const base = join(dir.path, 'base')
const ads = join(dir.path, 'ads')

test.before(async () => {
  for (const args of [
    ['synth', 'base', '--out', base, '--hidden', '64', '--intermediate', '96', '--layers', '1', '--vocab', '400', '--dtype', 'f32'],
    ['synth', 'adapters', '--out', ads, '--count', '2', '--hidden', '64', '--intermediate', '96', '--layers', '1', '--ranks', '4'],
    ['pack', join(ads, 'adapter-0000'), join(ads, 'adapter-0001'), '--out', join(dir.path, 'pack.safetensors')],
  ]) {
    const r = await runCli(args)
    assert.is(r.status, 0, r.stderr)
  }
})
test.after(() => dir.cleanup())

test('export --json: the written adapters; inspect --json on the file: a gguf-adapter with alpha 0 and its tensors', async () => {
  const out = join(dir.path, 'a.gguf')
  const r = await runCli(['export', join(ads, 'adapter-0000'), '--base', base, '--out', out, '--json'])
  assert.is(r.status, 0, r.stderr)
  const json = JSON.parse(r.stdout)
  assert.equal(Object.keys(json).sort(), ['adapters', 'architecture', 'base', 'dtype', 'format', 'out'])
  assert.equal([json.format, json.architecture, json.dtype], ['gguf', 'llama', 'F16'])
  assert.equal(Object.keys(json.adapters[0]).sort(), ['architecture', 'bytes', 'fallbacks', 'modules', 'name', 'out', 'tensors', 'type'])
  assert.equal(json.adapters[0].tensors[0], {name: 'blk.0.attn_q.weight.lora_a', shape: [4, 64], type: 'F16'})
  const i = await runCli(['inspect', out, '--json'])
  assert.is(i.status, 0, i.stderr)
  const report = JSON.parse(i.stdout)
  assert.equal(Object.keys(report).sort(), ['bytes', 'gguf', 'kind', 'metadata', 'path', 'tensors'])
  assert.is(report.kind, 'gguf-adapter')
  assert.equal(Object.keys(report.gguf).sort(), ['adapter', 'alignment', 'architecture', 'file_type', 'kv', 'name', 'tensor_types', 'tokenizer', 'type', 'version'])
  assert.equal(report.gguf.adapter, {type: 'lora', alpha: 0, tensors_adapted: 4})
  assert.equal(report.tensors[1], {name: 'blk.0.attn_q.weight.lora_b', dtype: 'F16', shape: [64, 4], bytes: 512})
  const human = await runCli(['inspect', out])
  assert.match(human.stdout, /GGUF v3 LoRA adapter for llama: 4 tensors adapted, adapter\.lora\.alpha 0 \(each module at scale 1\); 8 F16/)
})

test('a GGUF model from quantize: inspect shows architecture, file type and tokenizer; --all from a pack writes a folder', async () => {
  const model = join(dir.path, 'q.gguf')
  assert.is((await runCli(['quantize', base, '--scheme', 'q4_0', '--out', model])).status, 0)
  const human = await runCli(['inspect', model])
  assert.is(human.status, 0, human.stderr)
  assert.match(human.stdout, /GGUF v3 model: llama "base", file type MOSTLY_Q4_0; /)
  assert.match(human.stdout, /tokenizer: llama \(pre default\), 400 tokens/)
  assert.match(human.stdout, /blk\.0\.attn_q\.weight\s+Q4_0\s+\[64, 64\]\s+2304/)
  const all = await runCli(['export', join(dir.path, 'pack.safetensors'), '--all', '--base', model, '--out', join(dir.path, 'all'), '--dtype', 'q8_0'])
  assert.is(all.status, 0, all.stderr)
  assert.match(all.stdout, /exported 2 adapters for llama \(gguf, q8_0, adapter\.lora\.alpha = 0: scaling folded into lora_b\)/)
  assert.ok(existsSync(join(dir.path, 'all', 'adapter-0000.gguf')) && existsSync(join(dir.path, 'all', 'adapter-0001.gguf')))
})

test('usage and input errors exit 2 with one line in both modes and write nothing', async () => {
  const pack = join(dir.path, 'pack.safetensors')
  const plain = await runCli(['export', pack, '--base', base, '--out', join(dir.path, 'x.gguf')])
  assert.is(plain.status, 2)
  assert.match(plain.stderr, /^Error: .*pack\.safetensors is a pack: name one adapter with --adapter NAME, or export every one with --all\n$/)
  const json = await runCli(['export', pack, '--base', base, '--out', join(dir.path, 'x.gguf'), '--adapter', 'nope', '--json'])
  assert.is(json.status, 2)
  assert.is(JSON.parse(json.stdout).error.code, 'PACK_NO_SUCH_ADAPTER')
  const both = await runCli(['export', pack, '--base', base, '--out', join(dir.path, 'x.gguf'), '--adapter', 'a', '--all'])
  assert.is(both.status, 2)
  assert.not.ok(existsSync(join(dir.path, 'x.gguf')))
})

test.run()
