/**
 * The adaptable weights of a base model, by role: attention projections,
 * MLP projections, token embeddings, the output head, and other 2-D weights.
 * Read from a model's safetensors header, or derived from a Hugging Face
 * `config.json` of the Llama family.
 */
import {InputError} from '../errors.js'
import type {TensorSource} from '../formats/tensor-source.js'

export type ModuleRole = 'attention' | 'embedding' | 'mlp' | 'head' | 'other'

export interface PlannableModule {
  /** Module path (the weight's name without `.weight`). */
  readonly name: string
  readonly role: ModuleRole
  readonly kind: 'linear' | 'embedding'
  /** LoRA A is [r, in] (for embeddings: [r, num_embeddings]). */
  readonly in: number
  /** LoRA B is [out, r] (for embeddings: [dim, r]). */
  readonly out: number
}

const ATTENTION = new Set(['q_proj', 'k_proj', 'v_proj', 'o_proj', 'query', 'key', 'value', 'q', 'k', 'v', 'o', 'c_attn', 'query_key_value', 'qkv_proj', 'Wqkv', 'out_proj', 'to_q', 'to_k', 'to_v', 'q_lin', 'k_lin', 'v_lin', 'out_lin'])
const MLP = new Set(['gate_proj', 'up_proj', 'down_proj', 'fc1', 'fc2', 'c_fc', 'w1', 'w2', 'w3', 'dense_h_to_4h', 'dense_4h_to_h', 'gate_up_proj', 'lin1', 'lin2', 'wi', 'wo'])
const EMBEDDING = new Set(['embed_tokens', 'wte', 'word_embeddings', 'embed_in', 'shared', 'tok_embeddings'])
/** GPT-2 family Conv1D modules, whose weights are stored [in, out]. */
const CONV1D = new Set(['c_attn', 'c_proj', 'c_fc'])
const HEAD = new Set(['lm_head', 'embed_out', 'output'])

/** Role of a module from its path (`transformer.h.0.attn.c_proj` is attention, `…mlp.c_proj` MLP). */
export function classifyModule(path: string): ModuleRole {
  const parts = path.split('.')
  const last = parts[parts.length - 1]!
  if (EMBEDDING.has(last)) return 'embedding'
  if (HEAD.has(last) && parts.length === 1) return 'head'
  if (ATTENTION.has(last)) return 'attention'
  if (MLP.has(last)) return 'mlp'
  if (last === 'c_proj' || last === 'dense') {
    if (parts.some((p) => /^(attn|attention|self_attn|self_attention|SelfAttention)$/.test(p))) return 'attention'
    if (parts.some((p) => /^(mlp|intermediate|output|ffn|feed_forward)$/.test(p))) return 'mlp'
  }
  return 'other'
}

/** Every 2-D `*.weight` of a model, classified (headers only). */
export function inventoryFromModel(source: TensorSource): PlannableModule[] {
  const out: PlannableModule[] = []
  for (const info of source.tensors.values()) {
    if (info.shape.length !== 2 || !info.name.endsWith('.weight')) continue
    const name = info.name.slice(0, -'.weight'.length)
    const role = classifyModule(name)
    const [d0, d1] = info.shape as [number, number]
    // nn.Linear stores [out, in]; GPT-2's Conv1D stores [in, out]; an embedding is [num_embeddings, dim]
    const conv1d = CONV1D.has(name.split('.').pop()!)
    if (role === 'embedding') out.push({name, role, kind: 'embedding', in: d0, out: d1})
    else out.push({name, role, kind: 'linear', in: conv1d ? d0 : d1, out: conv1d ? d1 : d0})
  }
  if (out.length === 0) throw new InputError('PLAN_NO_WEIGHTS', `read ${source.path}: no 2-D weights to adapt`)
  return out
}

/**
 * The weights of a Llama-family model (llama, mistral, qwen2, gemma, …)
 * from its `config.json`: embed_tokens, per layer q/k/v/o (grouped-query
 * attention honoured) and gate/up/down, and lm_head unless tied.
 */
export function inventoryFromConfig(config: Record<string, unknown>, file: string): PlannableModule[] {
  const int = (key: string, fallback?: number): number => {
    const v = config[key] ?? fallback
    if (typeof v !== 'number' || !Number.isInteger(v) || v <= 0) {
      throw new InputError('PLAN_BAD_CONFIG', `read ${file}: "${key}" must be a positive integer for a Llama-style config (got ${JSON.stringify(config[key])})`)
    }
    return v
  }
  const hidden = int('hidden_size')
  const intermediate = int('intermediate_size')
  const layers = int('num_hidden_layers')
  const vocab = int('vocab_size')
  const heads = int('num_attention_heads')
  const kvHeads = int('num_key_value_heads', heads)
  const headDim = int('head_dim', Math.floor(hidden / heads))
  const out: PlannableModule[] = [{name: 'model.embed_tokens', role: 'embedding', kind: 'embedding', in: vocab, out: hidden}]
  for (let l = 0; l < layers; l++) {
    const p = `model.layers.${l}`
    out.push(
      {name: `${p}.self_attn.q_proj`, role: 'attention', kind: 'linear', in: hidden, out: heads * headDim},
      {name: `${p}.self_attn.k_proj`, role: 'attention', kind: 'linear', in: hidden, out: kvHeads * headDim},
      {name: `${p}.self_attn.v_proj`, role: 'attention', kind: 'linear', in: hidden, out: kvHeads * headDim},
      {name: `${p}.self_attn.o_proj`, role: 'attention', kind: 'linear', in: heads * headDim, out: hidden},
      {name: `${p}.mlp.gate_proj`, role: 'mlp', kind: 'linear', in: hidden, out: intermediate},
      {name: `${p}.mlp.up_proj`, role: 'mlp', kind: 'linear', in: hidden, out: intermediate},
      {name: `${p}.mlp.down_proj`, role: 'mlp', kind: 'linear', in: intermediate, out: hidden},
    )
  }
  if (config.tie_word_embeddings !== true) out.push({name: 'lm_head', role: 'head', kind: 'linear', in: hidden, out: vocab})
  return out
}
