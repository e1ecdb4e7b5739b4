/**
 * The models under test, as ONNX graphs over a weight set:
 * - `layer`: `y = x·Wᵀ (+ Δ)`, one hidden×hidden linear;
 * - `llama`: L blocks of the linear work of a Llama decoder:
 *   `a = n₁·Wqᵀ + n₁·Wkᵀ + n₁·Wvᵀ` (each + its Δ) with `n₁ = RMSNorm(h)`;
 *   `h += a·Woᵀ (+Δ)`; `n₂ = RMSNorm(h)`;
 *   `h += (SiLU(n₂·Wgᵀ) ⊙ n₂·Wuᵀ)·Wdᵀ` (each + its Δ).
 *   Attention mixing across tokens is left out (it does not depend on
 *   adapters): q, k and v are summed so that all three stay computed.
 *   With a pack's block (`dims.block`): grouped-query k and v are tiled to
 *   q's width (`a = q + [k k …] + [v v …]`, as repeat_kv widens them), a fused
 *   `qkv_proj` (GPT-2's c_attn) is split in three equal parts that are summed,
 *   q and o may be non-square, and a `plain` MLP is `ReLU(n₂·Wupᵀ)·Wdownᵀ`.
 *
 * Input `x [N, hidden]` (N = B·T rows, request-major), output `y [N, hidden]`.
 */
import {writeFileSync} from 'node:fs'
import {withFileContextSync} from '../errors.js'
import {join} from 'node:path'
import {GraphBuilder} from '../onnx/graph-builder.js'
import {blockArchitecture} from './block-architectures.js'
import {ModuleSpec, layoutNames, moduleSpecs} from './lora-layout.js'
import {FragmentContext, MatmulForm, ServeStrategy, declareRoutingInputs, defaultForm} from './strategy.js'
import {WeightSet, externalWeights} from './weights/weight-set.js'

/** RMSNorm epsilon (Llama's). */
export const RMS_EPS = 1e-5

/** Which graph to build over the weight set: the strategy, tokens per request, product form, file name. */
export interface StackModelOptions {
  /** The strategy whose routing inputs and delta fragment the graph gets; absent = the base model alone. */
  strategy?: ServeStrategy
  /** Tokens per request T (1 = decode). */
  tokens: number
  /** Product layout; default `gemv` for decode, `gemm` for prefill. */
  form?: MatmulForm
  /** Decode: gather requests in static chunks (see `FragmentContext.chunk`). */
  chunk?: {batch: number; size: number}
  /** Projections whose base weight is a graph input `W:<module key>` (the merged strategy). */
  weightInputs?: boolean
  /** File name inside the weight set's folder. */
  fileName: string
}

/** A model written next to the weight set: its path, the weight-set tensors it maps, its inputs, its size. */
export interface BuiltModel {
  path: string
  /** Weight-set tensors the graph uses (for `weight_bytes`). */
  weights: string[]
  inputs: string[]
  nodes: number
}

/** Build the model, write it next to the weight set's data file, and return its path. */
export function buildStackModel(set: WeightSet, options: StackModelOptions): BuiltModel {
  const g = new GraphBuilder(`${set.spec.dims.model}-${options.strategy?.name ?? 'base'}`)
  const D = set.spec.dims.hidden
  const {weight, declared: used} = externalWeights(g, set)
  g.input('x', 'float32', ['rows', D])
  const routing = options.strategy ? declareRoutingInputs(g, options.strategy, set.slots) : {}
  const weightInputs: string[] = []
  const fragment = options.strategy?.fragment
  const ctx: FragmentContext = {g, tokens: options.tokens, form: options.form ?? defaultForm(options.tokens), ...(options.chunk ? {chunk: options.chunk} : {}), slots: set.slots, rank: set.rank, sharedK: set.sharedWidth, routing, weight, weightType: (name) => set.tensor(name).type}
  const deltas = new Map<string, string>()
  const groupsByInput = new Map<string, typeof set.groups>()
  for (const group of set.groups) {
    const first = group.members[0]!
    const inputKey = `${group.layer}:${inputOf(first)}`
    groupsByInput.set(inputKey, [...(groupsByInput.get(inputKey) ?? []), group])
  }
  /** Linear `input·Wᵀ` of module m, plus its routed delta when adapted. */
  const linear = (m: ModuleSpec, input: string): string => {
    if (fragment) {
      for (const group of groupsByInput.get(`${m.layer}:${inputOf(m)}`) ?? []) {
        if (group.members.some((x) => x.key === m.key) && !deltas.has(m.key)) {
          for (const [key, d] of fragment(ctx, group, input)) deltas.set(key, d)
        }
      }
    }
    let w: string
    if (options.weightInputs && m.targeted) {
      w = g.input(`W:${m.key}`, 'float32', [m.in, m.out])
      weightInputs.push(w)
    } else w = weight(layoutNames.weight(m))
    const base = g.op('MatMul', [input, w])
    const d = deltas.get(m.key)
    return d ? g.op('Add', [base, d]) : base
  }
  const modules = new Map(moduleSpecs(set.spec.dims).map((m) => [m.key, m]))
  const mod = (layer: number, p: string) => modules.get(`L${layer}.${p}`)!
  let y: string
  if (set.spec.dims.model === 'layer') {
    y = linear(mod(0, 'q_proj'), 'x')
  } else {
    let h = 'x'
    const mlp = blockArchitecture(set.spec.dims.block?.architecture).mlp
    /** `x` [rows, width] repeated `times` times along the last axis. */
    const tiled = (x: string, times: number) => (times === 1 ? x : g.op('Tile', [x, g.ints(g.fresh('reps'), [1, times])]))
    for (let layer = 0; layer < set.spec.dims.layers; layer++) {
      const n1 = rmsNorm(g, h, weight(layoutNames.norm(layer, 1)))
      const fused = modules.get(`L${layer}.qkv_proj`)
      let a: string
      if (fused) {
        const t = linear(fused, n1)
        const part = fused.out / 3
        const third = (j: number) => g.op('Slice', [t, g.ints(g.fresh('st'), [j * part]), g.ints(g.fresh('en'), [(j + 1) * part]), g.ints(g.fresh('ax'), [1])])
        a = g.op('Add', [g.op('Add', [third(0), third(1)]), third(2)])
      } else {
        const qm = mod(layer, 'q_proj')
        const q = linear(qm, n1)
        const k = tiled(linear(mod(layer, 'k_proj'), n1), qm.out / mod(layer, 'k_proj').out)
        const v = tiled(linear(mod(layer, 'v_proj'), n1), qm.out / mod(layer, 'v_proj').out)
        a = g.op('Add', [g.op('Add', [q, k]), v])
      }
      h = g.op('Add', [h, linear(mod(layer, 'o_proj'), a)])
      const n2 = rmsNorm(g, h, weight(layoutNames.norm(layer, 2)))
      const up = linear(mod(layer, 'up_proj'), n2)
      let act: string
      if (mlp === 'gated') {
        const gate = linear(mod(layer, 'gate_proj'), n2)
        act = g.op('Mul', [g.op('Mul', [gate, g.op('Sigmoid', [gate])]), up])
      } else act = g.op('Relu', [up])
      h = g.op('Add', [h, linear(mod(layer, 'down_proj'), act)])
    }
    y = h
  }
  g.node('Identity', [y], {}, {outputs: ['y']})
  g.output('y', 'float32', ['rows', D])
  const path = join(set.dir, options.fileName)
  withFileContextSync('write', path, () => writeFileSync(path, g.encode()))
  return {path, weights: [...used], inputs: ['x', ...weightInputs], nodes: g.nodeCount}
}

/** Which value feeds a projection inside its block (q/k/v share n₁, gate/up share n₂). */
function inputOf(m: ModuleSpec): string {
  switch (m.projection) {
    case 'qkv_proj':
    case 'q_proj':
    case 'k_proj':
    case 'v_proj':
      return 'n1'
    case 'gate_proj':
    case 'up_proj':
      return 'n2'
    default:
      return m.projection
  }
}

/** `x / sqrt(mean(x²) + ε) · w` over the last axis. */
export function rmsNorm(g: GraphBuilder, x: string, w: string): string {
  const ms = g.op('ReduceMean', [g.op('Mul', [x, x])], {axes: [-1], keepdims: 1})
  const inv = g.op('Reciprocal', [g.op('Sqrt', [g.op('Add', [ms, g.floats(g.fresh('eps'), [RMS_EPS], [])])])])
  return g.op('Mul', [g.op('Mul', [x, inv]), w])
}
