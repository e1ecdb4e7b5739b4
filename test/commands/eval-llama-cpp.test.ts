/**
 * `lora eval --engine llama.cpp`: GGUF variant files computed by llama.cpp
 * (node-llama-cpp, found as an optional peer in the current directory, as a
 * user who installed it in their project has it) side by side with
 * onnxruntime. llama.cpp's row is checked against the test side's KL of the
 * float64 reference from llama.cpp's own distributions (the engine helper),
 * on the first line of eval.txt (128 positions).
 */
import {readFileSync, writeFileSync} from 'node:fs'
import {join} from 'node:path'
import {suite} from 'uvu'
import * as assert from 'uvu/assert'
import {STORIES, storiesMissing} from '../helpers/decoder-fixtures.js'
import {referenceDocuments, storiesEncoder} from '../helpers/eval-reference.js'
import {runCli, runCliProcess, skipIf, tempDir} from '../helpers/index.js'
import {ENGINES_DIR, engineDistributions, llamaCppMissing, softmax} from '../helpers/llama-engine.js'
import {LlamaReference, klDivergenceProbs} from '../helpers/llama-reference.js'
import {locateLlamaCpp} from '../../src/core/engines/llama-cpp.js'

const test = suite('commands/eval --engine llama.cpp')
const real = skipIf(test, llamaCppMissing())
const tmp = tempDir('lora-eval-llama-')
test.after(() => tmp.cleanup())
test.before(() => {
  if (!storiesMissing()) writeFileSync(LINE, `${referenceDocuments(readFileSync(join(STORIES, 'eval.txt'), 'utf8'))[0]!.split('\n')[0]}\n`)
})

const HF = join(STORIES, 'hf')
const ADAPTER = join(STORIES, 'adapters/lora_medium')
const LINE = join(tmp.path, 'first-line.txt')

interface Row {
  variant: string
  engine: string
  kld: {mean: number}
  top1_agree_pct: number
}

/** `lora eval … --json` in a real process whose current directory holds node-llama-cpp. */
function evalWithLlama(args: string[]): {rows: Row[]; out: Record<string, unknown>} {
  const r = runCliProcess(['eval', '--base', HF, '--text', LINE, '--engine', 'llama.cpp', '--threads', '1', '--json', ...args], {cwd: ENGINES_DIR})
  assert.is(r.status, 0, r.stderr || r.stdout)
  const out = JSON.parse(r.stdout) as {variants: Row[]}
  return {rows: out.variants, out}
}

real('llama.cpp\'s own F32 GGUF of the base: both engines at KL ≈ 0 from the float32 reference', () => {
  const {rows} = evalWithLlama(['--variant-file', join(STORIES, 'gguf/stories260K.gguf')])
  assert.equal(rows.map((r) => [r.variant, r.engine]), [['file:stories260K.gguf', 'onnxruntime'], ['file:stories260K.gguf (llama.cpp)', 'llama.cpp']])
  assert.ok(Math.abs(rows[0]!.kld.mean) < 1e-6, `onnxruntime ${rows[0]!.kld.mean}`)
  assert.ok(rows[1]!.kld.mean < 1e-4, `llama.cpp ${rows[1]!.kld.mean}`)
  assert.is(rows[1]!.top1_agree_pct, 100)
})

real('a q4_0 GGUF written by lora merge: llama.cpp\'s figures equal the test side\'s from llama.cpp\'s distributions, beside onnxruntime\'s', async () => {
  const gguf = join(tmp.path, 'merged-q4_0.gguf')
  const merged = await runCli(['merge', '--base', HF, '--adapter', ADAPTER, '--quantize', 'q4_0', '--out', gguf, '--no-quality'])
  assert.is(merged.status, 0, merged.stderr)
  const {rows} = evalWithLlama(['--adapter', ADAPTER, '--variant-file', gguf])
  const [ort, llama] = rows as [Row, Row]
  assert.equal([ort.engine, llama.engine], ['onnxruntime', 'llama.cpp'])
  // test side: float64 reference (base + adapter merged) against llama.cpp's probabilities for the same ids
  const ids = [storiesEncoder()(readFileSync(LINE, 'utf8').trim())]
  const ref = await LlamaReference.fromHfFolder(HF)
  await ref.mergeAdapter(ADAPTER)
  const refRows = ref.logits(ids[0]!)
  const [probs] = await engineDistributions(gguf, ids, ref.config.vocab)
  let kl = 0
  for (let p = 0; p + 1 < ids[0]!.length; p++) kl += klDivergenceProbs(softmax(refRows[p]!), probs![p]!)
  kl /= ids[0]!.length - 1
  assert.ok(Math.abs(llama.kld.mean - kl) < 1e-4, `lora eval (llama.cpp) ${llama.kld.mean}, test side ${kl}`)
  assert.ok(Math.abs(llama.kld.mean - ort.kld.mean) < 0.01, `llama.cpp ${llama.kld.mean} vs onnxruntime ${ort.kld.mean} on the same file`)
})

skipIf(test, locateLlamaCpp() ? `node-llama-cpp is installed where lora itself finds it (${locateLlamaCpp()})` : storiesMissing())(
  'where node-llama-cpp cannot be found: one line saying how to install it, exit 2',
  async () => {
    const r = await runCli(['eval', '--base', HF, '--text', LINE, '--variant-file', join(STORIES, 'gguf/stories260K.gguf'), '--engine', 'llama.cpp'])
    assert.is(r.status, 2)
    assert.match(r.stderr, /^Error: node-llama-cpp is not installed: install node-llama-cpp@3\.21\.1 to compute GGUF variants with llama\.cpp \(lora eval --engine llama\.cpp\) \(npm i -E node-llama-cpp@3\.21\.1\)\n$/)
  },
)

test.run()
