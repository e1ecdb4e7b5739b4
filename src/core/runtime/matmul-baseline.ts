/**
 * The floor a decoder prefill is measured against (`npm run bench:eval`):
 * onnxruntime's own MatMul time for the same linear weights, with nothing
 * else (a graph of the runtime's, built here; the benchmark only times it). One graph holds, for every layer, the seven projection products on
 * inputs of the prefill's shape (`[N, in]`, N = batch · tokens) with the
 * weights transposed to `[in, out]` exactly as the decoder graph holds them,
 * and the head product on the rows that get logits. Products of one shape
 * are summed into one output (an Add costs N·out flops against the
 * product's N·in·out), so that no product is dead code and only a few
 * outputs are copied out.
 */
import {GraphBuilder} from '../onnx/graph-builder.js'
import {transposeTyped} from '../linalg/dense.js'
import {OrtSession, OrtTensor, loadOrt, sessionOptions} from '../onnx/session.js'
import {ALL_PROJECTIONS, Projection, projectionPath} from '../models/llama.js'
import type {DecoderWeights} from './decoder-weights.js'
import {INLINE_WEIGHT_LIMIT, InitializerStore} from './initializer-store.js'
import {linearValues} from './linear-weight.js'
import {Rng} from '../random.js'

/** The input each projection reads in the decoder: the normed hidden state, the attention output, or the MLP activation. */
const INPUT_OF: Readonly<Record<Projection, 'hidden' | 'attention' | 'mlp'>> = {q_proj: 'hidden', k_proj: 'hidden', v_proj: 'hidden', o_proj: 'attention', gate_proj: 'hidden', up_proj: 'hidden', down_proj: 'mlp'}

/** A session running only the decoder's linear products, and its feeds. */
export interface MatMulBaseline {
  /** Run every product once. */
  run(): Promise<void>
  /** Products in the graph (7 per layer + the head). */
  readonly products: number
  /** Multiply-adds of one run. */
  readonly macs: number
  release(): Promise<void>
}


/**
 * Build the baseline for a prefill of `rows` tokens in all, `logitRows` of
 * which get logits, over the weights of `weights` (read one at a time;
 * quantized ones decoded to float).
 */
export async function buildMatMulBaseline(weights: DecoderWeights, options: {rows: number; logitRows: number; threads?: number}): Promise<MatMulBaseline> {
  const c = weights.config
  const g = new GraphBuilder('decoder-matmul-baseline')
  const bytes = 4 * c.layers * (c.hidden * (2 * c.heads * c.headDim + 2 * c.kvHeads * c.headDim) + 3 * c.hidden * c.intermediate) + 4 * c.vocab * c.hidden
  const store = bytes > INLINE_WEIGHT_LIMIT ? await InitializerStore.external(g) : InitializerStore.inline(g)
  const widths = {hidden: c.hidden, attention: c.heads * c.headDim, mlp: c.intermediate}
  for (const [name, width] of Object.entries(widths)) g.input(name, 'float32', [options.rows, width])
  g.input('head_rows', 'float32', [options.logitRows, c.hidden])
  const sums = new Map<number, string>()
  let macs = 0
  let products = 0
  try {
    for (let l = 0; l < c.layers; l++)
      for (const p of ALL_PROJECTIONS) {
        const name = `${projectionPath(l, p)}.weight`
        const w = await weights.linear(name)
        const y = g.op('MatMul', [INPUT_OF[p], store.add(`${name}.T`, transposeTyped(linearValues(w), w.out, w.in), [w.in, w.out])])
        const sum = sums.get(w.out)
        sums.set(w.out, sum === undefined ? y : g.op('Add', [sum, y]))
        macs += options.rows * w.in * w.out
        products++
      }
    const head = c.tieEmbeddings ? await weights.linear('model.embed_tokens.weight') : await weights.linear('lm_head.weight')
    g.node('MatMul', ['head_rows', store.add('head.T', transposeTyped(linearValues(head), head.out, head.in), [head.in, head.out])], {}, {outputs: ['logits']})
    g.output('logits', 'float32', [options.logitRows, head.out])
    macs += options.logitRows * head.in * head.out
    products++
    for (const [out, name] of sums) {
      g.node('Identity', [name], {}, {outputs: [`sum_${out}`]})
      g.output(`sum_${out}`, 'float32', [options.rows, out])
    }
    const encoded = await store.finish()
    const ort = await loadOrt()
    const settings = sessionOptions({ep: 'cpu', threads: options.threads})
    const session: OrtSession = encoded.kind === 'bytes' ? await ort.InferenceSession.create(encoded.bytes, settings) : await ort.InferenceSession.create(encoded.path, settings)
    const rng = new Rng(0, 'matmul-baseline')
    const feeds: Record<string, OrtTensor> = {head_rows: new ort.Tensor('float32', rng.fillNormal(new Float32Array(options.logitRows * c.hidden)), [options.logitRows, c.hidden])}
    for (const [name, width] of Object.entries(widths)) feeds[name] = new ort.Tensor('float32', rng.fillNormal(new Float32Array(options.rows * width)), [options.rows, width])
    return {
      products,
      macs,
      run: async () => {
        await session.run(feeds)
      },
      release: () => session.release(),
    }
  } finally {
    await store.dispose()
  }
}
