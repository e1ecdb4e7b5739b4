/**
 * PEFT module names on a llama.cpp GGUF base: `model.layers.3.self_attn.q_proj`
 * is `blk.3.attn_q.weight` there, with its rows in llama.cpp's RoPE order for
 * llama-family models (so the delta's rows are permuted the same way).
 */
import {InputError} from '../errors.js'
import type {GgufFile} from '../formats/gguf-reader.js'
import {sanitizeName} from '../formats/safetensors-header.js'
import type {BaseTensorResolver} from './plan.js'
import {GGUF_ARCHITECTURES, ggufTensorName, qkRole} from '../models/gguf-names.js'

/**
 * How adapter modules map onto the tensors of `gguf`.
 * @throws InputError when the GGUF's architecture is not one lora maps (llama, qwen2, gpt2)
 */
export function ggufBaseResolver(gguf: GgufFile): BaseTensorResolver {
  const name = gguf.value('general.architecture')
  const arch = typeof name === 'string' ? GGUF_ARCHITECTURES[name] : undefined
  if (!arch) {
    throw new InputError(
      'GGUF_UNSUPPORTED_MODEL',
      `read ${gguf.path}: general.architecture ${JSON.stringify(name ?? null)} is not one whose tensor names lora maps to PEFT modules (${Object.keys(GGUF_ARCHITECTURES).join(', ')})`,
    )
  }
  const count = (key: string): number | undefined => {
    const v = gguf.value(`${arch.gguf}.${key}`)
    return typeof v === 'number' && Number.isInteger(v) && v > 0 ? v : undefined
  }
  const heads = count('attention.head_count')
  const kvHeads = count('attention.head_count_kv') ?? heads
  return {
    outIn: true,
    resolve(module: string) {
      const hf = `${module}.weight`
      const tensor = ggufTensorName(arch, hf)
      if (!tensor) throw new InputError('MERGE_NO_BASE_TENSOR', `merge ${gguf.path}: module "${sanitizeName(module)}" has no llama.cpp tensor in the ${arch.gguf} architecture`)
      const role = arch.permuteQK ? qkRole(hf) : undefined
      if (role && !(role === 'q' ? heads : kvHeads)) throw new InputError('GGUF_BAD_METADATA', `read ${gguf.path}: ${arch.gguf}.attention.head_count${role === 'k' ? '_kv' : ''} is missing, needed to permute ${tensor}`)
      return {tensor, ...(role ? {permuteHeads: role === 'q' ? heads : kvHeads} : {})}
    },
  }
}
