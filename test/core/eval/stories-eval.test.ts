/**
 * `evaluateVariants` on stories260K against the float64 reference.
 *
 * Cost: the float64 reference runs once per model over the FIRST LINE of
 * eval.txt only (the first paragraph of the first story: 129 tokens, 128
 * scored positions, written to a temporary file and evaluated as the whole
 * text); the full text's reference perplexity is
 * checked in test/commands/eval.test.ts. Each variant's mean KL must be
 * within 0.002 nats of the test side's, computed on the same dequantized
 * weights set into the reference model.
 */
import {readFileSync, writeFileSync} from 'node:fs'
import {join} from 'node:path'
import {suite} from 'uvu'
import * as assert from 'uvu/assert'
import {STORIES, storiesMissing} from '../../helpers/decoder-fixtures.js'
import {meanKl, quantizeReference, referenceDocuments, referenceLogProbs, roundReference, storiesEncoder} from '../../helpers/eval-reference.js'
import {skipIf, tempDir} from '../../helpers/index.js'
import {LlamaReference, logSoftmax} from '../../helpers/llama-reference.js'
import {EvalResult, VariantResult, evaluateVariants} from '../../../src/core/eval/run-eval.js'
import {DEFAULT_VARIANTS, parseVariantList} from '../../../src/core/eval/variants/registry.js'
import {quantizeModel} from '../../../src/core/model-io/quantize-model.js'
import type {QuantOptions} from '../../../src/core/quant/schemes.js'
import {writeQuantizedGguf} from '../../helpers/decoder-fixtures.js'

const test = suite('eval/stories260K (first line of eval.txt)')
const real = skipIf(test, storiesMissing())
const tmp = tempDir('lora-eval-stories-')
test.after(() => tmp.cleanup())

const HF = join(STORIES, 'hf')
const ADAPTER = join(STORIES, 'adapters/lora_medium')
const TEXT = join(tmp.path, 'first-line.txt')
const q4: QuantOptions = {scheme: 'q4_0', blockSize: 32, doubleQuant: false}
const nf4: QuantOptions = {scheme: 'nf4', blockSize: 64, doubleQuant: false}

/** Loaded once: the base, the float64 reference (base + adapter merged in float64) and its log-probabilities on the first line. */
let shared: {base: LlamaReference; ref: LlamaReference; ids: number[][]; refRows: Float64Array[][]} | undefined
async function reference() {
  if (shared) return shared
  const line = referenceDocuments(readFileSync(join(STORIES, 'eval.txt'), 'utf8'))[0]!.split('\n')[0]!
  writeFileSync(TEXT, `${line}\n`)
  const ids = [storiesEncoder()(line)]
  const base = await LlamaReference.fromHfFolder(HF)
  const ref = base.clone()
  await ref.mergeAdapter(ADAPTER)
  shared = {base, ref, ids, refRows: referenceLogProbs(ref, ids)}
  return shared
}

const byName = (r: EvalResult, name: string): VariantResult => r.variants.find((v) => v.variant === name)!

/** The test side of each variant: the base's weights as the variant holds them. */
async function expectedModels(base: LlamaReference): Promise<Record<string, LlamaReference>> {
  const merged = async (m: LlamaReference) => (await m.mergeAdapter(ADAPTER), m)
  const quantized = (m: LlamaReference, q: QuantOptions) => (quantizeReference(m, q), m)
  const out: Record<string, LlamaReference> = {base}
  const f16 = await merged(base.clone())
  roundReference(f16, 'F16')
  out['merged:f16'] = f16
  for (const [name, q] of [['q4_0', q4], ['nf4', nf4]] as const) {
    out[`merge-then-quantize:${name}`] = quantized(await merged(base.clone()), q)
    out[`quantized-base-unmerged:${name}`] = await merged(quantized(base.clone(), q))
    out[`requantize:${name}`] = quantized(await merged(quantized(base.clone(), q)), q) // lora_medium adapts every block weight
  }
  return out
}

real('the default variants: each mean KL within 0.002 nats of the float64 computation on the same weights', async () => {
  const {base, ids, refRows} = await reference()
  const result = await evaluateVariants({base: HF, adapters: [{path: ADAPTER}], text: TEXT})
  assert.is(result.protocol.positions, ids[0]!.length - 1)
  assert.equal(result.protocol.documents, 1)
  const expected = await expectedModels(base)
  assert.equal(result.variants.map((v) => v.variant), [...DEFAULT_VARIANTS])
  for (const [name, model] of Object.entries(expected)) {
    const kl = meanKl(refRows, model, ids)
    const got = byName(result, name).kld.mean
    assert.ok(Math.abs(got - kl) <= 0.002, `${name}: lora eval ${got}, float64 ${kl}`)
  }
  // q4_0 cannot hold rows of 172: the five down_proj weights stay in float, as lora quantize keeps them
  assert.equal([byName(result, 'merge-then-quantize:q4_0').quantized_weights, byName(result, 'merge-then-quantize:q4_0').kept_float.length], [30, 5])
  assert.equal([byName(result, 'merge-then-quantize:nf4').quantized_weights, byName(result, 'merge-then-quantize:nf4').kept_float.length], [35, 0])
})

real('int4 (group 32) and bf16 variants against the float64 computation', async () => {
  const {base, ids, refRows} = await reference()
  const result = await evaluateVariants({base: HF, adapters: [{path: ADAPTER}], text: TEXT, variants: parseVariantList('merged:bf16,merge-then-quantize:int4'), groupSize: 32})
  const bf16 = base.clone()
  await bf16.mergeAdapter(ADAPTER)
  roundReference(bf16, 'BF16')
  const int4 = base.clone()
  await int4.mergeAdapter(ADAPTER)
  quantizeReference(int4, {scheme: 'int4', blockSize: 32, doubleQuant: false})
  for (const [name, model] of [['merged:bf16', bf16], ['merge-then-quantize:int4', int4]] as const) {
    const kl = meanKl(refRows, model, ids)
    assert.ok(Math.abs(byName(result, name).kld.mean - kl) <= 0.002, `${name}: lora eval ${byName(result, name).kld.mean}, float64 ${kl}`)
  }
  assert.is(byName(result, 'merge-then-quantize:int4').quantized_weights, 30) // rows of 172 are not a multiple of 32
})

real('adapter_retained_output: about 1 merged in f16, about 0 for an adapter so small that 4-bit rounding erases it', async () => {
  await reference()
  const full = await evaluateVariants({base: HF, adapters: [{path: ADAPTER}], text: TEXT, variants: parseVariantList('base,merged:f16,merge-then-quantize:q4_0')})
  assert.ok(byName(full, 'merged:f16').adapter_retained_output! > 0.99, `merged:f16 retained ${byName(full, 'merged:f16').adapter_retained_output}`)
  assert.is(byName(full, 'base').adapter_retained_output, 0) // the base is its own control
  const kept = byName(full, 'merge-then-quantize:q4_0').adapter_retained_output!
  assert.ok(kept > 0.2 && kept < 0.9, `at full weight q4_0 keeps part of the adapter (${kept})`)

  const tiny = await evaluateVariants({base: HF, adapters: [{path: ADAPTER, weight: 1e-3}], text: TEXT, variants: parseVariantList('merge-then-quantize:q4_0,merge-then-quantize:nf4')})
  for (const v of tiny.variants) assert.ok(Math.abs(v.adapter_retained_output!) < 0.05, `${v.variant}: retained ${v.adapter_retained_output} with the adapter ×0.001`)
})

real('files read back as stored: an nf4 folder written by lora quantize equals the in-memory quantized base; a Q8_0 GGUF runs', async () => {
  const {base, ids} = await reference()
  const folder = join(tmp.path, 'nf4')
  await quantizeModel({model: HF, out: folder, scheme: 'nf4'})
  const gguf = join(tmp.path, 'q8_0.gguf')
  await writeQuantizedGguf(join(STORIES, 'gguf/stories260K.gguf'), gguf, 'Q8_0')
  const result = await evaluateVariants({base: HF, text: TEXT, variants: parseVariantList('merge-then-quantize:nf4'), variantFiles: [{path: folder}, {path: gguf}]})
  const file = byName(result, 'file:nf4')
  assert.equal([file.kind, file.scheme, file.path, file.control, file.adapter_retained_output], ['file', null, folder, null, null])
  assert.ok(Math.abs(file.kld.mean - byName(result, 'merge-then-quantize:nf4').kld.mean) < 1e-9)
  const q8 = byName(result, 'file:q8_0.gguf')
  assert.ok(q8.kld.mean > 0 && q8.kld.mean < 1e-3, `Q8_0 mean KL ${q8.kld.mean}`)
  assert.is(result.reference.model, 'base, float32')
  // without adapters the reference is the base itself
  const rows = referenceLogProbs(base, ids)
  const nll = -rows[0]!.slice(0, -1).reduce((s, row, p) => s + row[ids[0]![p + 1]!]!, 0) / (ids[0]!.length - 1)
  assert.ok(Math.abs(result.reference.ppl / Math.exp(nll) - 1) < 1e-4)
})

real('a context shorter than the document: chunks scored like llama.cpp, the reference perplexity equal to float64 over the same chunks', async () => {
  const {ref, ids} = await reference()
  const result = await evaluateVariants({base: HF, adapters: [{path: ADAPTER}], text: TEXT, variants: parseVariantList('merged:f16'), ctx: 32})
  assert.is(result.protocol.positions, ids[0]!.length - 1)
  assert.ok(result.protocol.sequences > 6)
  assert.is(result.protocol.chunked_documents, 1)
  // the same chunks by hand: BOS + 31 tokens, later chunks scoring positions 16…30, overlapping by half
  const doc = ids[0]!.slice(1)
  let nll = 0
  let n = 0
  let last = -1
  for (let start = 0; last < doc.length - 1; ) {
    const window = [1, ...doc.slice(start, start + 31)]
    const rows = ref.logits(window).map((r) => logSoftmax(r))
    for (let p = 0; p + 1 < window.length; p++) {
      if (start + p <= last) continue // doc[start + p] (predicted at p) already scored
      nll -= rows[p]![window[p + 1]!]!
      n++
    }
    last = start + 30
    start = Math.min(last + 1 - 16, doc.length - 31)
  }
  assert.is(n, doc.length)
  assert.ok(Math.abs(result.reference.ppl / Math.exp(nll / n) - 1) < 1e-4, `${result.reference.ppl} vs ${Math.exp(nll / n)}`)
})

test.run()
