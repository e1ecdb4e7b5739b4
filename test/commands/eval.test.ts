/**
 * `lora eval` as a user runs it: the command on the whole of
 * eval.txt (reference perplexity against the float64 figure, computed once
 * here over every document), the --json schema, the --max-kld gate in both
 * output modes (on the first line of eval.txt, to keep it quick), and one
 * line with exit 2 for bad input.
 */
import {readFileSync, writeFileSync} from 'node:fs'
import {join} from 'node:path'
import {suite} from 'uvu'
import * as assert from 'uvu/assert'
import {STORIES, storiesMissing} from '../helpers/decoder-fixtures.js'
import {referenceDocuments, storiesEncoder} from '../helpers/eval-reference.js'
import {runCli, skipIf, tempDir} from '../helpers/index.js'
import {LlamaReference, meanNll} from '../helpers/llama-reference.js'
import {DEFAULT_VARIANTS} from '../../src/core/eval/variants/registry.js'

const test = suite('commands/eval')
const real = skipIf(test, storiesMissing())
const tmp = tempDir('lora-eval-cmd-')
test.after(() => tmp.cleanup())

const HF = join(STORIES, 'hf')
const ADAPTER = join(STORIES, 'adapters/lora_medium')
const EVAL_TXT = join(STORIES, 'eval.txt')
const LINE = join(tmp.path, 'first-line.txt')

real('the issue\'s command: reference perplexity equal to the float64 figure over all of eval.txt, every field of the --json schema', async () => {
  const r = await runCli(['eval', '--base', HF, '--adapter', ADAPTER, '--text', EVAL_TXT, '--json'])
  assert.is(r.status, 0, r.stderr)
  const out = JSON.parse(r.stdout)
  // float64: the adapter merged in float64 equals it applied unmerged; every document from BOS, every position
  const ref = await LlamaReference.fromHfFolder(HF)
  await ref.mergeAdapter(ADAPTER)
  const encode = storiesEncoder()
  let nll = 0
  let positions = 0
  for (const doc of referenceDocuments(readFileSync(EVAL_TXT, 'utf8'))) {
    const ids = encode(doc)
    nll += meanNll(ref.logits(ids), ids) * (ids.length - 1)
    positions += ids.length - 1
  }
  const ppl = Math.exp(nll / positions)
  assert.ok(Math.abs(out.reference.ppl / ppl - 1) < 1e-4, `lora eval ${out.reference.ppl}, float64 ${ppl}`)
  assert.equal([out.reference.positions, out.reference.tokens, out.protocol.documents, out.protocol.ctx, out.protocol.bos_token_id], [positions, positions + 8, 8, 512, 1])
  assert.equal(Object.keys(out).sort(), ['gate', 'protocol', 'reference', 'variants'])
  assert.equal(out.variants.map((v: {variant: string}) => v.variant), [...DEFAULT_VARIANTS])
  for (const v of out.variants) {
    for (const key of ['variant', 'kind', 'scheme', 'ppl', 'ppl_ratio', 'kld', 'top1_agree_pct', 'rms_dp', 'adapter_retained_output']) assert.ok(key in v, `${v.variant} has no ${key}`)
    assert.equal(Object.keys(v.kld).sort(), ['max', 'mean', 'p90', 'p99'])
    assert.ok(Math.abs(v.ppl_ratio - v.ppl / out.reference.ppl) < 1e-9)
    assert.ok(v.kld.p90 <= v.kld.p99 && v.kld.p99 <= v.kld.max, v.variant)
  }
  assert.is(out.gate, null)
})

real('--max-kld: exit 1 above the threshold and 0 below, plain and --json; base is not gated', async () => {
  writeFileSync(LINE, `${referenceDocuments(readFileSync(EVAL_TXT, 'utf8'))[0]!.split('\n')[0]}\n`)
  const args = ['eval', '--base', HF, '--adapter', ADAPTER, '--text', LINE, '--variants', 'base,merge-then-quantize:q4_0']
  const json = await runCli([...args, '--json', '--max-kld', '0.01'])
  assert.is(json.status, 1, json.stderr)
  const failed = JSON.parse(json.stdout)
  assert.equal(failed.gate.failing.map((f: {variant: string}) => f.variant), ['merge-then-quantize:q4_0'])
  assert.is(failed.error.code, 'MAX_KLD_EXCEEDED')
  const kl = failed.variants.find((v: {variant: string}) => v.variant === 'merge-then-quantize:q4_0').kld.mean
  assert.ok(failed.variants.find((v: {variant: string}) => v.variant === 'base').kld.mean > 0.01) // above, but the base is not gated

  const plain = await runCli([...args, '--max-kld', '0.01'])
  assert.is(plain.status, 1)
  assert.match(plain.stdout, /merge-then-quantize:q4_0/)
  assert.match(plain.stderr, /--max-kld 0.01: 1 variant exceeds it \(worst: merge-then-quantize:q4_0, mean KL /)
  assert.is(plain.stderr.trim().split('\n').length, 1)

  const above = String(kl * 1.01)
  const passJson = await runCli([...args, '--json', '--max-kld', above])
  assert.is(passJson.status, 0, passJson.stderr)
  assert.equal(JSON.parse(passJson.stdout).gate, {max_kld: Number(above), passed: true, failing: []})
  const passPlain = await runCli([...args, '--max-kld', above])
  assert.is(passPlain.status, 0, passPlain.stderr)
  assert.match(passPlain.stdout, /^reference \(base \+ adapters unmerged, float32: lora_medium\): PPL /)
})

real('bad input: one line, exit 2, in both modes', async () => {
  const base = ['eval', '--base', HF]
  // [arguments, code, message, both modes (else plain only)]
  const cases: Array<[string[], string, RegExp, boolean]> = [
    [['--text', EVAL_TXT, '--variants', 'merged'], 'EVAL_BAD_VARIANT', /"merged" needs a scheme: merged:f16, merged:bf16/, true],
    [['--text', EVAL_TXT, '--max-kld', 'lots'], 'BAD_FLAG', /--max-kld must be a number ≥ 0 \(got "lots"\)/, false],
    [['--text', EVAL_TXT, '--ctx', '100000'], 'EVAL_BAD_CONTEXT', /--ctx must be an integer from 4 to the model's context 512/, false],
    [['--text', EVAL_TXT, '--block-size', '128'], 'BAD_FLAG', /--block-size 128: Q4_0 blocks are always 32 elements .*drop the flag or the q4_0 variants/, false],
    [['--text', join(tmp.path, 'absent.txt')], 'IO_ENOENT', /absent\.txt: no such file/, true],
  ]
  for (const [extra, code, message, json] of cases) {
    const plain = await runCli([...base, ...extra])
    assert.is(plain.status, 2, extra.join(' '))
    assert.match(plain.stderr, message)
    assert.is(plain.stderr.trim().split('\n').length, 1, plain.stderr)
    if (!json) continue
    const out = await runCli([...base, ...extra, '--json'])
    assert.is(out.status, 2)
    assert.is(JSON.parse(out.stdout).error.code, code)
  }
})

test.run()
