/**
 * The test side of `lora eval`: the evaluation text split and tokenized
 * independently (blank-line split, the SentencePiece reference encoder over
 * the GGUF's vocabulary), the float64 reference model, and each variant's
 * weights built from the formulas with the reference's `setWeight` (the
 * 4-bit values from the project's own encoders, which have their own tests).
 */
import {readFileSync} from 'node:fs'
import {join} from 'node:path'
import {fromFloat, toFloat32} from '../../src/core/dtype.js'
import {QUANT_SCHEMES, QuantOptions, roundTrip} from '../../src/core/quant/schemes.js'
import {STORIES} from './decoder-fixtures.js'
import {parseGguf} from './gguf-reference.js'
import {LlamaReference, klDivergence, logSoftmax} from './llama-reference.js'
import {spmEncode} from './spm-reference.js'

/** Documents of a text: split on blank lines, trimmed. */
export function referenceDocuments(text: string): string[] {
  return text.split(/\n[ \t]*\n/).map((d) => d.trim()).filter((d) => d.length > 0)
}

/** stories260K's tokenizer as the SentencePiece reference: BOS + ids of one document. */
export function storiesEncoder(): (doc: string) => number[] {
  const gguf = parseGguf(readFileSync(join(STORIES, 'gguf/stories260K.gguf')))
  const tokens = gguf.kv.get('tokenizer.ggml.tokens')!.value as string[]
  const scores = gguf.kv.get('tokenizer.ggml.scores')!.value as number[]
  return (doc) => spmEncode(doc, tokens, scores, 1)
}

/** Linear weights inside the numbered blocks (what lora quantize encodes by default). */
export function blockLinearNames(model: LlamaReference): string[] {
  return model.names().filter((n) => /\.\d+\./.test(n) && /_proj\.weight$/.test(n))
}

/** Replace `names` (default: the block linear weights) by their encode → decode round trip, where the scheme can hold them. */
export function quantizeReference(model: LlamaReference, quant: QuantOptions, names = blockLinearNames(model)): void {
  const c = model.config
  for (const name of names) {
    const w = model.weight(name)
    const cols = /down_proj/.test(name) ? c.intermediate : /o_proj/.test(name) ? c.heads * c.headDim : c.hidden
    const shape: [number, number] = [w.length / cols, cols]
    if (QUANT_SCHEMES[quant.scheme].shapeProblem(shape, quant.blockSize)) continue
    model.setWeight(name, Float64Array.from(roundTrip(quant, shape, Float32Array.from(w))))
  }
}

/** Every tensor rounded (through float32) to F16 or BF16. */
export function roundReference(model: LlamaReference, dtype: 'F16' | 'BF16'): void {
  for (const name of model.names()) model.setWeight(name, Float64Array.from(toFloat32(dtype, fromFloat(dtype, Float32Array.from(model.weight(name))))))
}

/** Log-probabilities (float64) of every position of each sequence under `model`. */
export function referenceLogProbs(model: LlamaReference, sequences: readonly (readonly number[])[]): Float64Array[][] {
  return sequences.map((ids) => model.logits([...ids]).map((row) => logSoftmax(row)))
}

/** Mean KL(ref ‖ model) over every position but each sequence's last, from the reference's logits. */
export function meanKl(reference: readonly (readonly Float64Array[])[], model: LlamaReference, sequences: readonly (readonly number[])[]): number {
  let sum = 0
  let n = 0
  sequences.forEach((ids, s) => {
    const rows = model.logits([...ids])
    for (let p = 0; p + 1 < ids.length; p++, n++) sum += klDivergence(reference[s]![p]!, rows[p]!)
  })
  return sum / n
}
