/**
 * The ONNX graph of a whole Llama-family decoder, batched, with a KV cache.
 *
 * Inputs (B requests of S new tokens each, right-padded; N = B·S rows):
 * - `input_ids` int64 `[B, S]`, `position_ids` int64 `[B, S]` (the RoPE
 *   position of each token: its row's past length + its index);
 * - `seqlens_k` int32 `[B]` (past + new tokens − 1 per row) and
 *   `total_sequence_length` int32 scalar (the largest past + new), as
 *   onnxruntime's `GroupQueryAttention` takes them;
 * - `past_key.L` / `past_value.L` float32 `[B, kvHeads, P, headDim]` per
 *   layer, each row's first `past` entries valid (right-padded);
 * - `logits_index` int64 `[R]`: which of the N rows get logits.
 * Outputs: `logits` float32 `[R, vocab]`, `present_key.L` / `present_value.L`
 * `[B, kvHeads, max(total, P), headDim]`, and `new_key.L` / `new_value.L`
 * `[N, kvHeads · headDim]`: the new tokens' keys (rotated) and values alone,
 * for a caller that keeps the cache itself and fetches only these (returning
 * the whole present cache through onnxruntime-node costs about 0.5 ms per
 * MiB on the development machine: `npm run bench:step`).
 *
 * Each block: RMSNorm → q/k/v (+ biases, + adapter deltas) → rotate-half RoPE
 * from cos/sin tables gathered at `position_ids` → `GroupQueryAttention`
 * (causal, grouped heads, cache concatenated per row) → o_proj → residual;
 * RMSNorm → SwiGLU MLP → residual. Then the rows in `logits_index` → final
 * RMSNorm → lm_head (the embedding table when tied). Float weights run as
 * `MatMul` with Wᵀ `[in, out]`; block-quantized ones as `MatMulNBits`.
 */
import {GraphBuilder, MS_DOMAIN} from '../onnx/graph-builder.js'
import {transposeTyped} from '../linalg/dense.js'
import {Projection, projectionPath} from '../models/llama.js'
import {InputError} from '../errors.js'
import type {DecoderConfig} from './decoder-config.js'
import type {DecoderWeights} from './decoder-weights.js'
import type {InitializerStore} from './initializer-store.js'
import {LinearWeight, linearValues} from './linear-weight.js'
import type {ProjectionDeltas} from './projection-delta.js'
import {ropeTables} from './rope.js'

/** Graph input and output names. */
export const DECODER_IO = Object.freeze({
  inputIds: 'input_ids',
  positionIds: 'position_ids',
  seqlensK: 'seqlens_k',
  totalSequenceLength: 'total_sequence_length',
  logitsIndex: 'logits_index',
  logits: 'logits',
  pastKey: (layer: number) => `past_key.${layer}`,
  pastValue: (layer: number) => `past_value.${layer}`,
  presentKey: (layer: number) => `present_key.${layer}`,
  presentValue: (layer: number) => `present_value.${layer}`,
  newKey: (layer: number) => `new_key.${layer}`,
  newValue: (layer: number) => `new_value.${layer}`,
})

/** What `buildDecoderGraph` reads and where it puts the weights. */
export interface DecoderGraphOptions {
  weights: DecoderWeights
  store: InitializerStore
  /** Length of the RoPE tables (positions past it cannot be run). */
  maxPositions: number
  /** Adapters applied unmerged, or undefined for none. */
  deltas?: ProjectionDeltas
}

/** What the builder put in the graph, for reports. */
export interface DecoderGraphSummary {
  /** Linear weights run through MatMulNBits (4- or 8-bit blocks). */
  nbitsWeights: number
  floatWeights: number
  /** Projections with an adapter delta. */
  adaptedProjections: number
  nodes: number
}


class Builder {
  readonly g: GraphBuilder
  readonly summary = {nbitsWeights: 0, floatWeights: 0, adaptedProjections: 0}
  private readonly c: DecoderConfig

  constructor(private readonly o: DecoderGraphOptions) {
    this.g = o.store.g
    this.c = o.weights.config
  }

  /** `x / sqrt(mean(x²) + ε) · w` over the last axis. */
  rmsNorm(x: string, weightName: string, w: Float32Array): string {
    const {g} = this
    const weight = this.o.store.add(weightName, w, [w.length])
    // Pow → ReduceMean → Add → Sqrt → Div → Mul: the pattern onnxruntime fuses into SimplifiedLayerNormalization
    const ms = g.op('ReduceMean', [g.op('Pow', [x, g.floats(g.fresh('two'), [2], [])])], {axes: [-1], keepdims: 1})
    const rms = g.op('Sqrt', [g.op('Add', [ms, g.floats(g.fresh('eps'), [this.c.rmsEps], [])])])
    return g.op('Mul', [g.op('Div', [x, rms]), weight])
  }

  /** `x · Wᵀ` for a weight `[out, in]`: MatMul over Wᵀ, or MatMulNBits over the blocks. */
  matmul(x: string, name: string, w: LinearWeight): string {
    const {g, o} = this
    if (w.kind === 'float') {
      this.summary.floatWeights++
      return g.op('MatMul', [x, o.store.add(`${name}.T`, transposeTyped(w.values, w.out, w.in), [w.in, w.out])])
    }
    this.summary.nbitsWeights++
    const blocks = w.in / w.blockSize
    const codes = o.store.add(`${name}.codes`, w.codes, [w.out, blocks, (w.blockSize * w.bits) / 8])
    const scales = o.store.add(`${name}.scales`, w.scales, [w.out * blocks])
    return g.op('MatMulNBits', [x, codes, scales], {K: w.in, N: w.out, bits: w.bits, block_size: w.blockSize}, MS_DOMAIN)
  }

  /** A projection: base product, bias, adapter delta. */
  async projection(layer: number, projection: Projection, input: string, expect: [number, number]): Promise<string> {
    const module = projectionPath(layer, projection)
    const w = await this.o.weights.linear(`${module}.weight`)
    if (w.out !== expect[0] || w.in !== expect[1]) {
      throw new InputError('DECODER_BAD_SHAPE', `read ${this.o.weights.path}: ${module}.weight is [${w.out}, ${w.in}] (expected [${expect[0]}, ${expect[1]}] from the config)`)
    }
    const ctx = {g: this.g, store: this.o.store}
    const site = {layer, projection, module, in: w.in, out: w.out, input}
    const swapped = this.o.deltas?.weight?.(ctx, site)
    let y = swapped ? this.g.op('MatMul', [input, swapped]) : this.matmul(input, `${module}.weight`, w)
    if (this.o.weights.names.has(`${module}.bias`)) y = this.g.op('Add', [y, this.o.store.add(`${module}.bias`, await this.o.weights.vector(`${module}.bias`), [w.out])])
    const d = await this.o.deltas?.delta(ctx, site)
    if (d === undefined) return y
    this.summary.adaptedProjections++
    return this.g.op('Add', [y, d])
  }

  /** Rotate-half RoPE on `t [N, heads·hd]` with `cos`, `sin` `[N, 1, hd/2]`. */
  rope(t: string, heads: number, cos: string, sin: string): string {
    const {g} = this
    const hd = this.c.headDim
    const t3 = g.op('Reshape', [t, g.ints(g.fresh('shape'), [-1, heads, hd])])
    const [t1, t2] = g.node('Split', [t3, g.ints(g.fresh('split'), [hd / 2, hd / 2])], {axis: 2}, {outputs: 2}) as [string, string]
    const r1 = g.op('Sub', [g.op('Mul', [t1, cos]), g.op('Mul', [t2, sin])])
    const r2 = g.op('Add', [g.op('Mul', [t2, cos]), g.op('Mul', [t1, sin])])
    return g.op('Reshape', [g.op('Concat', [r1, r2], {axis: 2}), g.ints(g.fresh('shape'), [-1, heads * hd])])
  }

  async build(): Promise<DecoderGraphSummary> {
    const {g, c, o} = this
    const W = o.weights
    const io = DECODER_IO
    g.input(io.inputIds, 'int64', ['batch', 'seq'])
    g.input(io.positionIds, 'int64', ['batch', 'seq'])
    g.input(io.seqlensK, 'int32', ['batch'])
    g.input(io.totalSequenceLength, 'int32', [])
    g.input(io.logitsIndex, 'int64', ['rows'])
    for (let l = 0; l < c.layers; l++) {
      g.input(io.pastKey(l), 'float32', ['batch', c.kvHeads, 'past', c.headDim])
      g.input(io.pastValue(l), 'float32', ['batch', c.kvHeads, 'past', c.headDim])
    }
    o.deltas?.declareInputs?.(g)

    const embedding = await W.linear('model.embed_tokens.weight')
    if (embedding.out !== c.vocab || embedding.in !== c.hidden) {
      throw new InputError('DECODER_BAD_SHAPE', `read ${W.path}: the embedding table is [${embedding.out}, ${embedding.in}] (expected [${c.vocab}, ${c.hidden}])`)
    }
    const table = o.store.add('model.embed_tokens.weight', linearValues(embedding), [c.vocab, c.hidden])
    let x = g.op('Reshape', [g.op('Gather', [table, io.inputIds], {axis: 0}), g.ints('hidden_rows', [-1, c.hidden])])

    const {cos, sin} = ropeTables(c, o.maxPositions)
    const half = c.headDim / 2
    const rows3 = g.ints('rope_rows', [-1, 1, half])
    const cosN = g.op('Reshape', [g.op('Gather', [o.store.add('rope.cos', cos, [o.maxPositions, half]), io.positionIds], {axis: 0}), rows3])
    const sinN = g.op('Reshape', [g.op('Gather', [o.store.add('rope.sin', sin, [o.maxPositions, half]), io.positionIds], {axis: 0}), rows3])
    const batchSeq = g.op('Concat', [g.op('Shape', [io.inputIds]), g.ints('last_dim', [-1])], {axis: 0})

    const qDim = c.heads * c.headDim
    const kvDim = c.kvHeads * c.headDim
    const shapes = {q: [qDim, c.hidden], kv: [kvDim, c.hidden], o: [c.hidden, qDim], up: [c.intermediate, c.hidden], down: [c.hidden, c.intermediate]} as const
    for (let l = 0; l < c.layers; l++) {
      const pre = `model.layers.${l}`
      const n1 = this.rmsNorm(x, `${pre}.input_layernorm.weight`, await W.vector(`${pre}.input_layernorm.weight`))
      const q = this.rope(await this.projection(l, 'q_proj', n1, [...shapes.q]), c.heads, cosN, sinN)
      const k = this.rope(await this.projection(l, 'k_proj', n1, [...shapes.kv]), c.kvHeads, cosN, sinN)
      const v = await this.projection(l, 'v_proj', n1, [...shapes.kv])
      const [attn] = g.node(
        'GroupQueryAttention',
        [g.op('Reshape', [q, batchSeq]), g.op('Reshape', [k, batchSeq]), g.op('Reshape', [v, batchSeq]), io.pastKey(l), io.pastValue(l), io.seqlensK, io.totalSequenceLength],
        {num_heads: c.heads, kv_num_heads: c.kvHeads},
        {domain: MS_DOMAIN, outputs: [g.fresh('attn'), io.presentKey(l), io.presentValue(l)]},
      ) as [string]
      g.output(io.presentKey(l), 'float32', ['batch', c.kvHeads, 'present', c.headDim])
      g.output(io.presentValue(l), 'float32', ['batch', c.kvHeads, 'present', c.headDim])
      g.node('Identity', [k], {}, {outputs: [io.newKey(l)]})
      g.node('Identity', [v], {}, {outputs: [io.newValue(l)]})
      g.output(io.newKey(l), 'float32', ['rows', kvDim])
      g.output(io.newValue(l), 'float32', ['rows', kvDim])
      const a = g.op('Reshape', [attn, g.ints(g.fresh('shape'), [-1, qDim])])
      x = g.op('Add', [x, await this.projection(l, 'o_proj', a, [...shapes.o])])
      const n2 = this.rmsNorm(x, `${pre}.post_attention_layernorm.weight`, await W.vector(`${pre}.post_attention_layernorm.weight`))
      const gate = await this.projection(l, 'gate_proj', n2, [...shapes.up])
      const up = await this.projection(l, 'up_proj', n2, [...shapes.up])
      const act = g.op('Mul', [g.op('Mul', [gate, g.op('Sigmoid', [gate])]), up])
      x = g.op('Add', [x, await this.projection(l, 'down_proj', act, [...shapes.down])])
    }
    const picked = g.op('Gather', [x, io.logitsIndex], {axis: 0})
    const normed = this.rmsNorm(picked, 'model.norm.weight', await W.vector('model.norm.weight'))
    let logits: string
    if (c.tieEmbeddings) {
      logits = embedding.kind === 'float' ? g.op('Gemm', [normed, table], {transB: 1}) : this.matmul(normed, 'lm_head.tied', embedding)
    } else {
      const head = await W.linear('lm_head.weight')
      if (head.out !== c.vocab || head.in !== c.hidden) throw new InputError('DECODER_BAD_SHAPE', `read ${W.path}: lm_head.weight is [${head.out}, ${head.in}] (expected [${c.vocab}, ${c.hidden}])`)
      logits = this.matmul(normed, 'lm_head.weight', head)
    }
    g.node('Identity', [logits], {}, {outputs: [io.logits]})
    g.output(io.logits, 'float32', ['rows', c.vocab])
    return {...this.summary, nodes: g.nodeCount}
  }
}

/**
 * Add the decoder's nodes, inputs, outputs and weights to `options.store`'s
 * graph, reading one weight at a time.
 * @throws InputError when a weight's shape disagrees with the config
 */
export function buildDecoderGraph(options: DecoderGraphOptions): Promise<DecoderGraphSummary> {
  return new Builder(options).build()
}
