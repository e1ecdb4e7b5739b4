/**
 * A synthetic Llama decoder for the end-to-end benchmark, generated in
 * memory from a seed, one tensor at a time when the graph builder asks for
 * it (nothing is written to disk or kept): the dims of a real model
 * (`--hidden 2048 --intermediate 5632 --layers 4 --vocab 32000` is
 * TinyLlama-1.1B's shape, four of its blocks), values that keep activations
 * O(1) (each linear weight uniform with std 1/√in, the embedding std 1,
 * norms near 1), and no tokenizer: the benchmark's prompts are token ids.
 */
import {UsageError} from '../errors.js'
import {headDim as defaultHeadDim} from '../models/llama.js'
import {ALL_PROJECTIONS, projectionPath} from '../models/llama.js'
import {Rng} from '../random.js'
import type {DecoderConfig} from '../runtime/decoder-config.js'
import type {DecoderWeights} from '../runtime/decoder-weights.js'
import {floatLinear, LinearWeight} from '../runtime/linear-weight.js'
import {projectionShapeOf} from '../runtime/adapter-factors.js'

/** The shape of a synthetic decoder. */
export interface SyntheticDecoderDims {
  readonly hidden: number
  readonly intermediate: number
  readonly layers: number
  readonly vocab: number
  /** Query heads (default hidden / 64, or 1 when 64 does not divide hidden). */
  readonly heads?: number
  /** Key/value heads (default: as many as query heads). */
  readonly kvHeads?: number
  /** Longest sequence the model runs (default 4096). */
  readonly maxPositions?: number
}

/** Uniform values with standard deviation `std` around `mean` (√12·std wide): fast, and any spread will do for a benchmark. */
export function fillUniform(target: Float32Array, rng: Rng, std: number, mean = 0): Float32Array {
  const width = Math.sqrt(12) * std
  for (let i = 0; i < target.length; i++) target[i] = mean + width * (rng.nextUint32() / 4294967296 - 0.5)
  return target
}

/**
 * The config of a synthetic decoder, checked.
 * @throws UsageError when the heads do not divide the hidden size evenly or the head size is not a multiple of 8
 */
export function syntheticDecoderConfig(dims: SyntheticDecoderDims): DecoderConfig {
  const heads = dims.heads ?? dims.hidden / defaultHeadDim(dims.hidden)
  const kvHeads = dims.kvHeads ?? heads
  for (const [name, v] of Object.entries({hidden: dims.hidden, intermediate: dims.intermediate, layers: dims.layers, vocab: dims.vocab, heads, 'kv-heads': kvHeads})) {
    if (!(Number.isSafeInteger(v) && v > 0)) throw new UsageError('BAD_FLAG', `--${name} must be a positive integer (got ${v})`)
  }
  if (dims.hidden % heads !== 0) throw new UsageError('BAD_FLAG', `--heads ${heads} does not divide --hidden ${dims.hidden}`)
  if (heads % kvHeads !== 0) throw new UsageError('BAD_FLAG', `--heads ${heads} is not a multiple of --kv-heads ${kvHeads}`)
  const headDim = dims.hidden / heads
  if (headDim % 8 !== 0) throw new UsageError('BAD_FLAG', `head size ${headDim} (hidden ${dims.hidden} / ${heads} heads) is not a multiple of 8 (onnxruntime's GroupQueryAttention needs it)`)
  return {
    architecture: 'llama',
    hidden: dims.hidden,
    intermediate: dims.intermediate,
    layers: dims.layers,
    heads,
    kvHeads,
    headDim,
    vocab: dims.vocab,
    rmsEps: 1e-5,
    ropeTheta: 10000,
    ropeScaling: null,
    ropeFreqFactors: null,
    maxPositions: dims.maxPositions ?? 4096,
    tieEmbeddings: false,
    bosTokenId: 1,
    eosTokenIds: [2],
  }
}

/** The tensors of a synthetic decoder: name → [out, in] (linear) or [n] (norm), and the std of its values. */
/** Every tensor of the synthetic decoder of config `c`: shape and the scale it is drawn with. */
export function tensorTable(c: DecoderConfig): Map<string, {shape: [number, number] | [number]; std: number; mean: number}> {
  const t = new Map<string, {shape: [number, number] | [number]; std: number; mean: number}>()
  t.set('model.embed_tokens.weight', {shape: [c.vocab, c.hidden], std: 1, mean: 0})
  for (let l = 0; l < c.layers; l++) {
    t.set(`model.layers.${l}.input_layernorm.weight`, {shape: [c.hidden], std: 0.05, mean: 1})
    t.set(`model.layers.${l}.post_attention_layernorm.weight`, {shape: [c.hidden], std: 0.05, mean: 1})
    for (const p of ALL_PROJECTIONS) {
      const [out, inDim] = projectionShapeOf(c, p)
      t.set(`${projectionPath(l, p)}.weight`, {shape: [out, inDim], std: 1 / Math.sqrt(inDim), mean: 0})
    }
  }
  t.set('model.norm.weight', {shape: [c.hidden], std: 0.05, mean: 1})
  t.set('lm_head.weight', {shape: [c.vocab, c.hidden], std: 1 / Math.sqrt(c.hidden), mean: 0})
  return t
}

/**
 * The weights of a synthetic decoder, each tensor generated when asked for
 * (the same values every time, from `seed` and its name).
 */
export function syntheticDecoderWeights(dims: SyntheticDecoderDims, seed: number): DecoderWeights {
  const config = syntheticDecoderConfig(dims)
  const table = tensorTable(config)
  const spec = (name: string, rank: 1 | 2) => {
    const s = table.get(name)
    if (!s || s.shape.length !== rank) throw new Error(`synthetic decoder: no ${rank}-D tensor "${name}"`)
    return s
  }
  return {
    path: `synthetic llama ${dims.hidden}/${dims.intermediate}×${dims.layers} (seed ${seed})`,
    format: 'safetensors',
    config,
    names: new Set(table.keys()),
    async vector(name) {
      const s = spec(name, 1)
      return fillUniform(new Float32Array(s.shape[0]), new Rng(seed, 'e2e-decoder', name), s.std, s.mean)
    },
    async linear(name): Promise<LinearWeight> {
      const s = spec(name, 2)
      const [out, inDim] = s.shape as [number, number]
      return floatLinear(fillUniform(new Float32Array(out * inDim), new Rng(seed, 'e2e-decoder', name), s.std), out, inDim)
    },
    async close() {},
  }
}
