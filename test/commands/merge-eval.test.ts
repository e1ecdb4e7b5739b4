/**
 * `lora merge --eval FILE`: the written model is evaluated as stored, beside
 * the base and the other 4-bit serving paths, with the written model's
 * control; `--max-kld` gates the written model, in both output modes. On
 * stories260K with lora_medium and the first line of eval.txt (quick).
 */
import {existsSync, readFileSync, writeFileSync} from 'node:fs'
import {join} from 'node:path'
import {suite} from 'uvu'
import * as assert from 'uvu/assert'
import {STORIES, storiesMissing} from '../helpers/decoder-fixtures.js'
import {referenceDocuments} from '../helpers/eval-reference.js'
import {runCli, skipIf, tempDir} from '../helpers/index.js'
import {evaluateVariants} from '../../src/core/eval/run-eval.js'
import {parseVariantList} from '../../src/core/eval/variants/registry.js'

const test = suite('commands/merge --eval')
const real = skipIf(test, storiesMissing())
const tmp = tempDir('lora-merge-eval-')
test.after(() => tmp.cleanup())

const HF = join(STORIES, 'hf')
const ADAPTER = join(STORIES, 'adapters/lora_medium')
const LINE = join(tmp.path, 'first-line.txt')

real('--json: the eval table of the written nf4 model, equal to the in-memory merge-then-quantize build, with its control', async () => {
  writeFileSync(LINE, `${referenceDocuments(readFileSync(join(STORIES, 'eval.txt'), 'utf8'))[0]!.split('\n')[0]}\n`)
  const out = join(tmp.path, 'merged-nf4')
  const r = await runCli(['merge', '--base', HF, '--adapter', ADAPTER, '--out', out, '--quantize', 'nf4', '--eval', LINE, '--json'])
  assert.is(r.status, 0, r.stderr)
  const json = JSON.parse(r.stdout)
  assert.ok(json.report.totals.merge_then_quantize, 'the weight-space report is still there')
  assert.equal(json.eval.variants.map((v: {variant: string}) => v.variant), ['base', 'quantized-base-unmerged:nf4', 'requantize:nf4', 'file:merged-nf4'])
  const written = json.eval.variants.at(-1)
  assert.equal([written.kind, written.path, written.control.model, json.eval.gate], ['file', out, 'quantized-base:nf4', null])
  const memory = await evaluateVariants({base: HF, adapters: [{path: ADAPTER}], text: LINE, variants: parseVariantList('merge-then-quantize:nf4')})
  // the same encoder; lora merge adds ΔW in float32 (onnxruntime Gemm), eval in float64, so a few codes may round apart
  assert.ok(Math.abs(written.kld.mean - memory.variants[0]!.kld.mean) < 1e-5, `written ${written.kld.mean}, in memory ${memory.variants[0]!.kld.mean}`)
  assert.ok(Math.abs(written.adapter_retained_output - memory.variants[0]!.adapter_retained_output!) < 1e-4)
})

real('--max-kld gates the written model: exit 1 above (plain and --json), 0 below; it needs --eval', async () => {
  const args = (out: string) => ['merge', '--base', HF, '--adapter', ADAPTER, '--out', join(tmp.path, out), '--dtype', 'f16', '--eval', LINE]
  const failed = await runCli([...args('f16-a'), '--max-kld', '1e-9', '--json'])
  assert.is(failed.status, 1, failed.stderr)
  const json = JSON.parse(failed.stdout)
  assert.equal([json.error.code, json.eval.gate.failing.map((f: {variant: string}) => f.variant)], ['MAX_KLD_EXCEEDED', ['file:f16-a']])
  assert.is(json.eval.variants.find((v: {variant: string}) => v.variant === 'file:f16-a').control.model, 'rounded-base:f16')
  assert.ok(existsSync(join(tmp.path, 'f16-a/model.safetensors')), 'the merged model is written before the gate')
  const plain = await runCli([...args('f16-b'), '--max-kld', '1e-9'])
  assert.is(plain.status, 1)
  assert.match(plain.stdout, /output on .*first-line\.txt:\nreference \(base \+ adapters unmerged, float32: lora_medium\)/)
  assert.match(plain.stderr, /--max-kld 1e-9: 1 variant exceeds it \(worst: file:f16-b/)
  const passed = await runCli([...args('f16-c'), '--max-kld', '0.01'])
  assert.is(passed.status, 0, passed.stderr)
  const alone = await runCli(['merge', '--base', HF, '--adapter', ADAPTER, '--out', join(tmp.path, 'f16-d'), '--max-kld', '0.01'])
  assert.is(alone.status, 2)
  assert.match(alone.stderr, /--max-kld needs --eval/)
})

test.run()
