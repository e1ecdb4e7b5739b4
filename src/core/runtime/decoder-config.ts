/**
 * The hyperparameters of a Llama-family decoder (llama, mistral, qwen2), read
 * from a Hugging Face `config.json` or from a GGUF file's `<arch>.*` metadata,
 * checked once so the graph builder can trust them.
 */
import {InputError} from '../errors.js'
import type {GgufFile} from '../formats/gguf-reader.js'

/** RoPE frequency scaling (transformers' `rope_scaling`). */
export type RopeScaling =
  | {readonly type: 'linear'; readonly factor: number}
  | {readonly type: 'llama3'; readonly factor: number; readonly lowFreqFactor: number; readonly highFreqFactor: number; readonly originalMaxPositions: number}

/** A decoder's hyperparameters, checked (heads divide evenly, head size a multiple of 8). */
export interface DecoderConfig {
  /** `llama`, `mistral`, `qwen2` (config.json's model_type or the GGUF architecture). */
  readonly architecture: string
  readonly hidden: number
  readonly intermediate: number
  readonly layers: number
  /** Query heads. */
  readonly heads: number
  /** Key/value heads (GQA when fewer than `heads`). */
  readonly kvHeads: number
  readonly headDim: number
  readonly vocab: number
  readonly rmsEps: number
  readonly ropeTheta: number
  readonly ropeScaling: RopeScaling | null
  /** Per-dimension RoPE frequency divisors [headDim / 2] (a GGUF's `rope_freqs.weight`), or null. */
  readonly ropeFreqFactors: Float32Array | null
  /** Positions the model handles (the RoPE tables are built this long). */
  readonly maxPositions: number
  readonly tieEmbeddings: boolean
  readonly bosTokenId: number | null
  readonly eosTokenIds: readonly number[]
}

/** RoPE tables are never built longer than this (positions past it are refused). */
export const MAX_ROPE_POSITIONS = 1 << 17
/** Architectures whose decoder block this runtime builds. */
export const DECODER_ARCHITECTURES = Object.freeze(['llama', 'mistral', 'qwen2'] as const)

type Json = Record<string, unknown>

function positiveInt(value: unknown, key: string, where: string): number {
  if (typeof value !== 'number' || !Number.isSafeInteger(value) || value <= 0) {
    throw new InputError('DECODER_BAD_CONFIG', `${where}: ${key} must be a positive integer (got ${JSON.stringify(value)})`)
  }
  return value
}

function positiveNumber(value: unknown, key: string, where: string): number {
  if (typeof value !== 'number' || !Number.isFinite(value) || value <= 0) {
    throw new InputError('DECODER_BAD_CONFIG', `${where}: ${key} must be a positive number (got ${JSON.stringify(value)})`)
  }
  return value
}

function ids(value: unknown): number[] {
  if (typeof value === 'number' && Number.isSafeInteger(value) && value >= 0) return [value]
  if (Array.isArray(value)) return value.filter((v): v is number => typeof v === 'number' && Number.isSafeInteger(v) && v >= 0)
  return []
}

/** Checks shared by both sources: heads divide evenly, RoPE needs an even head size. */
function checked(config: DecoderConfig, where: string): DecoderConfig {
  if (!(DECODER_ARCHITECTURES as readonly string[]).includes(config.architecture)) {
    throw new InputError('DECODER_UNSUPPORTED_ARCH', `${where}: architecture "${config.architecture}" is not a Llama-family decoder this runtime builds (${DECODER_ARCHITECTURES.join(', ')})`)
  }
  if (config.heads % config.kvHeads !== 0) throw new InputError('DECODER_BAD_CONFIG', `${where}: ${config.heads} attention heads is not a multiple of ${config.kvHeads} key/value heads`)
  if (config.headDim % 8 !== 0) throw new InputError('DECODER_BAD_CONFIG', `${where}: head size ${config.headDim} is not a multiple of 8 (onnxruntime's GroupQueryAttention needs it)`)
  if (config.maxPositions > MAX_ROPE_POSITIONS) return {...config, maxPositions: MAX_ROPE_POSITIONS}
  return config
}

function ropeScalingFromHf(raw: unknown, where: string): RopeScaling | null {
  if (raw === null || raw === undefined) return null
  if (typeof raw !== 'object') throw new InputError('DECODER_BAD_CONFIG', `${where}: rope_scaling must be an object or null`)
  const rs = raw as Json
  const type = (rs.rope_type ?? rs.type) as unknown
  if (type === 'default') return null
  if (type === 'linear') return {type: 'linear', factor: positiveNumber(rs.factor, 'rope_scaling.factor', where)}
  if (type === 'llama3') {
    return {
      type: 'llama3',
      factor: positiveNumber(rs.factor, 'rope_scaling.factor', where),
      lowFreqFactor: positiveNumber(rs.low_freq_factor, 'rope_scaling.low_freq_factor', where),
      highFreqFactor: positiveNumber(rs.high_freq_factor, 'rope_scaling.high_freq_factor', where),
      originalMaxPositions: positiveInt(rs.original_max_position_embeddings, 'rope_scaling.original_max_position_embeddings', where),
    }
  }
  throw new InputError('DECODER_UNSUPPORTED_ROPE', `${where}: rope_scaling type ${JSON.stringify(type)} is not supported (linear, llama3)`)
}

/**
 * A decoder config from a parsed `config.json`.
 * @param tensorNames the checkpoint's tensor names (an absent `lm_head.weight` means tied embeddings)
 * @param where the file, for messages
 * @throws InputError for a missing or malformed field, an unsupported architecture or RoPE scaling
 */
export function decoderConfigFromHf(json: unknown, tensorNames: ReadonlySet<string>, where: string): DecoderConfig {
  if (typeof json !== 'object' || json === null || Array.isArray(json)) throw new InputError('DECODER_BAD_CONFIG', `${where}: not a JSON object`)
  const c = json as Json
  const architecture = typeof c.model_type === 'string' ? c.model_type : 'llama'
  const hidden = positiveInt(c.hidden_size, 'hidden_size', where)
  const heads = positiveInt(c.num_attention_heads, 'num_attention_heads', where)
  const headDim = c.head_dim === undefined || c.head_dim === null ? hidden / heads : positiveInt(c.head_dim, 'head_dim', where)
  if (!Number.isSafeInteger(headDim)) throw new InputError('DECODER_BAD_CONFIG', `${where}: hidden_size ${hidden} is not a multiple of num_attention_heads ${heads} and head_dim is absent`)
  return checked(
    {
      architecture,
      hidden,
      intermediate: positiveInt(c.intermediate_size, 'intermediate_size', where),
      layers: positiveInt(c.num_hidden_layers, 'num_hidden_layers', where),
      heads,
      kvHeads: c.num_key_value_heads === undefined || c.num_key_value_heads === null ? heads : positiveInt(c.num_key_value_heads, 'num_key_value_heads', where),
      headDim,
      vocab: positiveInt(c.vocab_size, 'vocab_size', where),
      rmsEps: c.rms_norm_eps === undefined ? 1e-6 : positiveNumber(c.rms_norm_eps, 'rms_norm_eps', where),
      ropeTheta: c.rope_theta === undefined ? 10000 : positiveNumber(c.rope_theta, 'rope_theta', where),
      ropeScaling: ropeScalingFromHf(c.rope_scaling, where),
      ropeFreqFactors: null,
      maxPositions: c.max_position_embeddings === undefined ? 4096 : positiveInt(c.max_position_embeddings, 'max_position_embeddings', where),
      tieEmbeddings: c.tie_word_embeddings === true || !tensorNames.has('lm_head.weight'),
      bosTokenId: ids(c.bos_token_id)[0] ?? null,
      eosTokenIds: ids(c.eos_token_id),
    },
    where,
  )
}

/**
 * A decoder config from a GGUF file's metadata (`general.architecture`,
 * `<arch>.embedding_length`, …), as llama.cpp reads it.
 * @throws InputError for missing hyperparameters or an unsupported architecture or RoPE scaling
 */
export function decoderConfigFromGguf(gguf: GgufFile, ropeFreqFactors: Float32Array | null): DecoderConfig {
  const where = `read ${gguf.path}`
  const arch = gguf.value('general.architecture')
  if (typeof arch !== 'string') throw new InputError('DECODER_BAD_CONFIG', `${where}: no general.architecture`)
  const num = (key: string): number | undefined => {
    const v = gguf.value(`${arch}.${key}`)
    return typeof v === 'number' ? v : typeof v === 'bigint' ? Number(v) : undefined
  }
  const need = (key: string): number => positiveInt(num(key), `${arch}.${key}`, where)
  const hidden = need('embedding_length')
  const heads = need('attention.head_count')
  const embd = gguf.tensors.get('token_embd.weight')
  if (!embd) throw new InputError('DECODER_MISSING_TENSOR', `${where}: no token_embd.weight`)
  const tokens = gguf.value('tokenizer.ggml.tokens')
  const vocab = embd.shape[0] ?? (tokens && typeof tokens === 'object' ? tokens.items.length : 0)
  let ropeScaling: RopeScaling | null = null
  const scalingType = gguf.value(`${arch}.rope.scaling.type`)
  if (scalingType === 'linear') ropeScaling = {type: 'linear', factor: positiveNumber(num('rope.scaling.factor'), `${arch}.rope.scaling.factor`, where)}
  else if (scalingType !== undefined && scalingType !== 'none') {
    throw new InputError('DECODER_UNSUPPORTED_ROPE', `${where}: ${arch}.rope.scaling.type "${String(scalingType)}" is not supported (linear, or llama3 through rope_freqs.weight)`)
  }
  const headDim = num('attention.key_length') ?? hidden / heads
  const token = (key: string): number[] => {
    const v = gguf.value(`tokenizer.ggml.${key}`)
    return typeof v === 'number' && v >= 0 && v < vocab ? [v] : []
  }
  return checked(
    {
      architecture: arch,
      hidden,
      intermediate: need('feed_forward_length'),
      layers: need('block_count'),
      heads,
      kvHeads: num('attention.head_count_kv') ?? heads,
      headDim,
      vocab,
      rmsEps: positiveNumber(num('attention.layer_norm_rms_epsilon'), `${arch}.attention.layer_norm_rms_epsilon`, where),
      ropeTheta: num('rope.freq_base') ?? 10000,
      ropeScaling,
      ropeFreqFactors,
      maxPositions: num('context_length') ?? 4096,
      tieEmbeddings: !gguf.tensors.has('output.weight'),
      bosTokenId: token('bos_token_id')[0] ?? null,
      eosTokenIds: token('eos_token_id'),
    },
    where,
  )
}
