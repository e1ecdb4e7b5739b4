/**
 * A float64 reference model carrying the weights of a GGUF file: tensors
 * decoded by the independent GGUF reader (test/helpers/gguf-reference.ts),
 * renamed to Hugging Face names and q/k rows put back in transformers' order
 * (with the name map and permutation checked bit-exact against llama.cpp's
 * own stories260K GGUF in test/core/models/gguf-names.test.ts).
 */
import {readFileSync} from 'node:fs'
import {GGUF_ARCHITECTURES, hfTensorName, permuteRowsFromGguf, qkRole} from '../../src/core/models/gguf-names.js'
import {readGgufF64} from './gguf-reference.js'
import type {LlamaReference} from './llama-reference.js'

/**
 * `base` with every weight the GGUF holds replaced by its decoded value
 * (what llama.cpp computes with). Tensors the GGUF lacks (a tied head) stay as in `base`.
 * @returns the reference and the GGML type of each tensor, by Hugging Face name
 */
export function referenceFromGguf(base: LlamaReference, path: string): {model: LlamaReference; types: Map<string, string>} {
  const {parsed, tensors} = readGgufF64(readFileSync(path))
  const arch = GGUF_ARCHITECTURES[parsed.kv.get('general.architecture')!.value as string]!
  const model = base.clone()
  const types = new Map<string, string>()
  for (const [name, t] of tensors) {
    const hf = hfTensorName(arch, name)
    if (!hf) throw new Error(`gguf-model-reference: ${name} has no Hugging Face name`)
    if (hf === 'lm_head.weight' && base.config.tieEmbeddings) {
      if (!model.names().includes(hf)) continue
    }
    const role = arch.permuteQK ? qkRole(hf) : undefined
    const cols = t.shape.length === 2 ? t.shape[1]! : 1
    const values = role ? permuteRowsFromGguf(t.values, role === 'q' ? base.config.heads : base.config.kvHeads, cols) : t.values
    model.setWeight(hf, values)
    types.set(hf, t.type)
  }
  return {model, types}
}
