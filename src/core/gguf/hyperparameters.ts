/**
 * A Hugging Face `config.json` as llama.cpp's model metadata, per
 * architecture (the keys `convert_hf_to_gguf.py` writes and llama.cpp's
 * loader requires), plus what each architecture needs done to its tensors:
 * q/k heads for the row permutation, GPT-2's Conv1D weights to transpose,
 * buffers llama.cpp does not load, and tensors to add (Llama 3's
 * `rope_freqs.weight`, GPT-2's `output.weight`).
 *
 * | architecture | model_type | hyperparameter keys (prefix `<arch>.`) |
 * |---|---|---|
 * | llama | llama, mistral | context_length, embedding_length, block_count, feed_forward_length, attention.head_count, attention.head_count_kv, attention.layer_norm_rms_epsilon, rope.freq_base, rope.dimension_count, vocab_size (+ attention.key_length/value_length when head_dim ≠ hidden/heads, rope.scaling.* for linear scaling) |
 * | qwen2 | qwen2 | the same |
 * | gpt2 | gpt2 | context_length, embedding_length, block_count, feed_forward_length, attention.head_count, attention.layer_norm_epsilon |
 */
import {InputError} from '../errors.js'
import type {GgufKV} from '../formats/gguf-types.js'
import {isConv1DWeight} from '../models/conv1d.js'
import {GGUF_ARCHITECTURES, GgufArchitecture, ggufArchitectureForModelType} from '../models/gguf-names.js'
import {f32, str, u32} from './kv.js'

/** A tensor the architecture adds that the checkpoint does not hold. */
export type ExtraTensor = {readonly name: string; readonly values: Float32Array} | {readonly name: string; readonly copyOf: string}

export interface GgufModelSpec {
  readonly architecture: GgufArchitecture
  /** `<arch>.*` hyperparameters. */
  readonly kv: GgufKV[]
  readonly vocabSize: number
  /** Query and KV heads (the q/k row permutation uses them when `architecture.permuteQK`). */
  readonly heads: number
  readonly kvHeads: number
  /** Hugging Face weights stored [in, out] (GPT-2's Conv1D), written transposed to [out, in]. */
  isConv1D(hfName: string): boolean
  /** Checkpoint buffers llama.cpp does not load (rotary inverse frequencies, GPT-2's causal mask). */
  isIgnored(hfName: string): boolean
  /** Tensors to add, given the GGUF names already planned. */
  extraTensors(planned: ReadonlySet<string>): ExtraTensor[]
}

type Config = Readonly<Record<string, unknown>>

class ConfigReader {
  constructor(
    readonly config: Config,
    readonly file: string,
  ) {}

  fail(problem: string): never {
    throw new InputError('CONFIG_INVALID', `read ${this.file}: ${problem}`)
  }

  /** A positive integer under one of `keys` (first present wins), or the default. */
  int(keys: readonly string[], fallback?: number): number {
    for (const k of keys) {
      const v = this.config[k]
      if (v === undefined || v === null) continue
      if (typeof v !== 'number' || !Number.isSafeInteger(v) || v <= 0) this.fail(`${k} must be a positive integer (got ${JSON.stringify(v)})`)
      return v
    }
    if (fallback === undefined) this.fail(`${keys.join(' or ')} is missing, and llama.cpp needs it`)
    return fallback
  }

  num(keys: readonly string[], fallback?: number): number {
    for (const k of keys) {
      const v = this.config[k]
      if (v === undefined || v === null) continue
      if (typeof v !== 'number' || !Number.isFinite(v)) this.fail(`${k} must be a number (got ${JSON.stringify(v)})`)
      return v
    }
    if (fallback === undefined) this.fail(`${keys.join(' or ')} is missing, and llama.cpp needs it`)
    return fallback
  }

  refuse(problem: string): never {
    throw new InputError('GGUF_UNSUPPORTED_MODEL', `convert ${this.file}: ${problem}; llama.cpp would compute a different model from the file lora would write`)
  }
}

/** Llama 3's per-frequency RoPE factors (transformers `_compute_llama3_parameters`), as llama.cpp's `rope_freqs.weight`. */
export function llama3RopeFactors(headDim: number, theta: number, scaling: Config): Float32Array {
  const factor = Number(scaling.factor ?? 8)
  const low = Number(scaling.low_freq_factor ?? 1)
  const high = Number(scaling.high_freq_factor ?? 4)
  const original = Number(scaling.original_max_position_embeddings ?? 8192)
  const lowWavelen = original / low
  const highWavelen = original / high
  const out = new Float32Array(headDim / 2)
  for (let i = 0; i < headDim / 2; i++) {
    const freq = 1 / theta ** ((2 * i) / headDim)
    const wavelen = (2 * Math.PI) / freq
    if (wavelen < highWavelen) out[i] = 1
    else if (wavelen > lowWavelen) out[i] = factor
    else {
      const smooth = (original / wavelen - low) / (high - low)
      out[i] = 1 / ((1 - smooth) / factor + smooth)
    }
  }
  return out
}

function llamaFamily(arch: GgufArchitecture, c: ConfigReader): GgufModelSpec {
  const p = arch.gguf
  const hidden = c.int(['hidden_size'])
  const heads = c.int(['num_attention_heads'])
  const kvHeads = c.int(['num_key_value_heads'], heads)
  const headDim = c.int(['head_dim'], hidden / heads)
  const vocabSize = c.int(['vocab_size'])
  const theta = c.num(['rope_theta'], 10000)
  if (!Number.isInteger(hidden / heads) && c.config.head_dim === undefined) c.fail(`hidden_size ${hidden} is not a multiple of num_attention_heads ${heads}`)
  if (heads % kvHeads !== 0) c.fail(`num_attention_heads ${heads} is not a multiple of num_key_value_heads ${kvHeads}`)
  const act = c.config.hidden_act ?? 'silu'
  if (act !== 'silu') c.refuse(`hidden_act "${String(act)}" (llama.cpp's ${p} uses SiLU)`)
  if (c.config.mlp_bias === true) c.refuse('mlp_bias is true (llama.cpp does not load MLP biases for this architecture)')
  if (c.config.use_sliding_window === true) c.refuse('use_sliding_window is true')
  const kv: GgufKV[] = [
    u32(`${p}.context_length`, c.int(['max_position_embeddings'], 2048)),
    u32(`${p}.embedding_length`, hidden),
    u32(`${p}.block_count`, c.int(['num_hidden_layers'])),
    u32(`${p}.feed_forward_length`, c.int(['intermediate_size'])),
    u32(`${p}.attention.head_count`, heads),
    u32(`${p}.attention.head_count_kv`, kvHeads),
    f32(`${p}.attention.layer_norm_rms_epsilon`, c.num(['rms_norm_eps'], 1e-6)),
    f32(`${p}.rope.freq_base`, theta),
    u32(`${p}.rope.dimension_count`, headDim),
    u32(`${p}.vocab_size`, vocabSize),
  ]
  if (headDim * heads !== hidden) kv.push(u32(`${p}.attention.key_length`, headDim), u32(`${p}.attention.value_length`, headDim))
  const scaling = c.config.rope_scaling as Config | null | undefined
  const ropeType = scaling ? (scaling.rope_type ?? scaling.type) : undefined
  let ropeFactors: Float32Array | undefined
  if (scaling && ropeType !== 'default') {
    if (ropeType === 'linear') kv.push(str(`${p}.rope.scaling.type`, 'linear'), f32(`${p}.rope.scaling.factor`, Number(scaling.factor)))
    else if (ropeType === 'llama3' && arch.gguf === 'llama') ropeFactors = llama3RopeFactors(headDim, theta, scaling)
    else c.refuse(`rope_scaling type ${JSON.stringify(ropeType)} is not one lora converts (linear${arch.gguf === 'llama' ? ', llama3' : ''})`)
  }
  return {
    architecture: arch,
    kv,
    vocabSize,
    heads,
    kvHeads,
    isConv1D: () => false,
    isIgnored: (n) => /\.rotary_emb\.inv_freq$/.test(n),
    extraTensors: () => (ropeFactors ? [{name: 'rope_freqs.weight', values: ropeFactors}] : []),
  }
}

function gpt2(arch: GgufArchitecture, c: ConfigReader): GgufModelSpec {
  const hidden = c.int(['n_embd'])
  const heads = c.int(['n_head'])
  const act = c.config.activation_function ?? 'gelu_new'
  if (act !== 'gelu_new' && act !== 'gelu_pytorch_tanh') c.refuse(`activation_function "${String(act)}" (llama.cpp's gpt2 uses the tanh GELU)`)
  if (c.config.scale_attn_by_inverse_layer_idx === true) c.refuse('scale_attn_by_inverse_layer_idx is true')
  if (c.config.scale_attn_weights === false) c.refuse('scale_attn_weights is false')
  const p = arch.gguf
  return {
    architecture: arch,
    kv: [
      u32(`${p}.context_length`, c.int(['n_ctx', 'n_positions'])),
      u32(`${p}.embedding_length`, hidden),
      u32(`${p}.block_count`, c.int(['n_layer'])),
      u32(`${p}.feed_forward_length`, c.int(['n_inner'], 4 * hidden)),
      u32(`${p}.attention.head_count`, heads),
      f32(`${p}.attention.layer_norm_epsilon`, c.num(['layer_norm_epsilon'], 1e-5)),
    ],
    vocabSize: c.int(['vocab_size']),
    heads,
    kvHeads: heads,
    isConv1D: (n) => isConv1DWeight(c.config.model_type, n),
    isIgnored: (n) => /\.attn\.(masked_)?bias$/.test(n),
    // GPT-2 ties its head to wte; llama.cpp's converter writes it as output.weight
    extraTensors: (planned) => (planned.has('output.weight') ? [] : [{name: 'output.weight', copyOf: 'token_embd.weight'}]),
  }
}

const BUILDERS: Readonly<Record<string, (arch: GgufArchitecture, c: ConfigReader) => GgufModelSpec>> = Object.freeze({
  llama: llamaFamily,
  qwen2: llamaFamily,
  gpt2,
})

/**
 * The GGUF description of a model from its config.json.
 * @param file config.json's path, for messages
 * @throws InputError GGUF_UNSUPPORTED_MODEL for an architecture or setting lora does not convert (one line naming it),
 *   CONFIG_INVALID for missing or malformed hyperparameters
 */
export function describeHfModel(config: Config, file: string): GgufModelSpec {
  const c = new ConfigReader(config, file)
  const modelType = typeof config.model_type === 'string' ? config.model_type : c.fail('model_type is missing, so the architecture is unknown')
  const arch = ggufArchitectureForModelType(modelType)
  if (!arch) {
    const known = Object.values(GGUF_ARCHITECTURES).flatMap((a) => a.modelTypes)
    throw new InputError('GGUF_UNSUPPORTED_MODEL', `convert ${file}: model_type "${modelType}" is not an architecture lora writes as GGUF (${known.join(', ')}); ${'convert it with llama.cpp\'s convert_hf_to_gguf.py and pass that GGUF as --base'}`)
  }
  return BUILDERS[arch.gguf]!(arch, c)
}
