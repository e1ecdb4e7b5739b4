/**
 * The Llama-style decoder layout used by synthetic bases and adapters, the
 * serving benchmark and the placement planner: module names, their [out, in]
 * shapes, and the config.json a Hugging Face loader expects.
 */
import {DTYPES, isDType} from '../dtype.js'

export const ATTENTION_PROJECTIONS = ['q_proj', 'k_proj', 'v_proj', 'o_proj'] as const
export const MLP_PROJECTIONS = ['gate_proj', 'up_proj', 'down_proj'] as const
export const ALL_PROJECTIONS = [...ATTENTION_PROJECTIONS, ...MLP_PROJECTIONS] as const
export type Projection = (typeof ALL_PROJECTIONS)[number]

export interface LlamaDims {
  /** Hidden size D. */
  readonly hidden: number
  /** MLP intermediate size I. */
  readonly intermediate: number
  /** Number of decoder blocks L. */
  readonly layers: number
  /** Vocabulary size V. */
  readonly vocab?: number
}

export function isProjection(name: string): name is Projection {
  return (ALL_PROJECTIONS as readonly string[]).includes(name)
}

/** Module path of a projection, e.g. `model.layers.3.self_attn.q_proj`. */
export function projectionPath(layer: number, projection: Projection): string {
  const block = (ATTENTION_PROJECTIONS as readonly string[]).includes(projection) ? 'self_attn' : 'mlp'
  return `model.layers.${layer}.${block}.${projection}`
}

/** [out, in] of a projection's weight. */
export function projectionShape(dims: LlamaDims, projection: Projection): [number, number] {
  switch (projection) {
    case 'gate_proj':
    case 'up_proj':
      return [dims.intermediate, dims.hidden]
    case 'down_proj':
      return [dims.hidden, dims.intermediate]
    default:
      return [dims.hidden, dims.hidden]
  }
}

/** Attention head size used for synthetic configs: 64 when it divides the hidden size. */
export function headDim(hidden: number): number {
  return hidden % 64 === 0 ? 64 : hidden
}

/** Every weight of a Llama-style base, in checkpoint order: name, [out, in] or [n]; with `attentionBias` (Qwen2) q/k/v biases too. */
export function llamaTensorShapes(dims: LlamaDims, options: {attentionBias?: boolean} = {}): Array<{name: string; shape: number[]; role: 'embedding' | 'norm' | 'linear' | 'head' | 'bias'}> {
  const vocab = dims.vocab ?? 32000
  const out: Array<{name: string; shape: number[]; role: 'embedding' | 'norm' | 'linear' | 'head' | 'bias'}> = [
    {name: 'model.embed_tokens.weight', shape: [vocab, dims.hidden], role: 'embedding'},
  ]
  for (let layer = 0; layer < dims.layers; layer++) {
    out.push({name: `model.layers.${layer}.input_layernorm.weight`, shape: [dims.hidden], role: 'norm'})
    for (const p of ATTENTION_PROJECTIONS) {
      out.push({name: `${projectionPath(layer, p)}.weight`, shape: projectionShape(dims, p), role: 'linear'})
      if (options.attentionBias && p !== 'o_proj') out.push({name: `${projectionPath(layer, p)}.bias`, shape: [projectionShape(dims, p)[0]], role: 'bias'})
    }
    out.push({name: `model.layers.${layer}.post_attention_layernorm.weight`, shape: [dims.hidden], role: 'norm'})
    for (const p of MLP_PROJECTIONS) out.push({name: `${projectionPath(layer, p)}.weight`, shape: projectionShape(dims, p), role: 'linear'})
  }
  out.push({name: 'model.norm.weight', shape: [dims.hidden], role: 'norm'}, {name: 'lm_head.weight', shape: [vocab, dims.hidden], role: 'head'})
  return out
}

/** A Hugging Face `config.json` for a LlamaForCausalLM of these dims. */
export function llamaConfig(dims: LlamaDims, torchDtype: string): Record<string, unknown> {
  const hd = headDim(dims.hidden)
  return {
    architectures: ['LlamaForCausalLM'],
    model_type: 'llama',
    hidden_size: dims.hidden,
    intermediate_size: dims.intermediate,
    num_hidden_layers: dims.layers,
    num_attention_heads: dims.hidden / hd,
    num_key_value_heads: dims.hidden / hd,
    head_dim: hd,
    vocab_size: dims.vocab ?? 32000,
    hidden_act: 'silu',
    max_position_embeddings: 4096,
    rms_norm_eps: 1e-5,
    rope_theta: 10000,
    tie_word_embeddings: false,
    torch_dtype: torchDtype,
  }
}

/** A Hugging Face `config.json` for a Qwen2ForCausalLM of these dims (Llama's layout with q/k/v biases). */
export function qwen2Config(dims: LlamaDims, torchDtype: string): Record<string, unknown> {
  return {
    ...llamaConfig(dims, torchDtype),
    architectures: ['Qwen2ForCausalLM'],
    model_type: 'qwen2',
    max_position_embeddings: 32768,
    rms_norm_eps: 1e-6,
    rope_theta: 1000000,
    use_sliding_window: false,
    sliding_window: null,
  }
}

/** `F16` → `float16`, as transformers writes `torch_dtype`. */
export function torchDtypeName(dtype: string): string {
  return isDType(dtype) ? DTYPES[dtype].torch : dtype.toLowerCase()
}
