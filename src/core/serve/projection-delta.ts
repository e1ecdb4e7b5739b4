/**
 * One projection's LoRA delta under a serving strategy, on any graph: the
 * entry point for graphs other than the bench's model stacks (a decoder
 * with per-request adapters). Given the graph builder, the projection's
 * dims, its stacked weights (in an external data file or inline) and the
 * routing inputs the graph declared once (`declareRoutingInputs`), it emits
 * the strategy's fragment and returns the delta `[rows, out]` to add to the
 * projection's base product.
 *
 * Projections that share an input can share one fused A stack: call the
 * strategy's `fragment` with a `FragmentGroup` of several members instead
 * (see `model-stack.ts`).
 */
import type {ExternalTensor, GraphBuilder} from '../onnx/graph-builder.js'
import {layoutNames} from './lora-layout.js'
import {FragmentContext, FragmentGroup, MatmulForm, RoutingValues, ServeStrategy, defaultForm} from './strategy.js'

/** Inline values of a stacked weight (f16 as binary16 bits). */
export interface InlineTensor {
  data: Float32Array | Uint16Array
  dims: readonly number[]
  type: 'float32' | 'float16'
}

/** A stacked weight: a range of an external data file (beside the model file), or inline values. */
export type StackedTensor = ExternalTensor | InlineTensor

/**
 * One projection's stacked adapter weights, S = adapters + 1 slots (slot 0
 * all zeros = no adapter). A strategy reads the part its `weights` names.
 */
export interface ProjectionStacks {
  /** Routed stacks: A `[S, R, in]`. */
  A?: StackedTensor
  /** Routed stacks: s·B `[S, out, R]` (scaling folded in). */
  B?: StackedTensor
  /** Shared-B form: A' `[S, K, in]` (scaling folded in). */
  Ak?: StackedTensor
  /** Shared-B form: the shared basis transposed, Uᵀ `[K, out]`. */
  Bk?: StackedTensor
}

/** One projection's delta to emit: the graph, the strategy, the projection and its stacks, the routing inputs. */
export interface ProjectionDeltaOptions {
  g: GraphBuilder
  strategy: ServeStrategy
  /** Unique in the graph: the stacks become initializers `<key>.A`, `<key>.B`, `<key>.Ak`, `<key>.Bk`. */
  key: string
  in: number
  out: number
  /** The projection's input `[rows, in]` (rows = B·T, request-major). */
  x: string
  stacks: ProjectionStacks
  /** The graph's routing inputs (`declareRoutingInputs(g, strategy, S)`). */
  routing: RoutingValues
  /** Tokens per request T (1 = decode). */
  tokens: number
  /** Default: `gemv` for decode, `gemm` for prefill. */
  form?: MatmulForm
  /** Decode: gather requests in static chunks (see `FragmentContext.chunk`). */
  chunk?: {batch: number; size: number}
}

/**
 * Emit `strategy`'s delta for one projection and return it (`[rows, out]`, float32).
 * @throws Error when the strategy has no delta fragment, reads stacks the projection lacks, or the stacks' dims disagree with `in`/`out`
 */
export function emitProjectionDelta(o: ProjectionDeltaOptions): string {
  const fragment = o.strategy.fragment
  if (!fragment) throw new Error(`strategy ${o.strategy.name} adds no delta fragment to a graph`)
  const group: FragmentGroup = {key: o.key, in: o.in, members: [{key: o.key, out: o.out}]}
  const member = group.members[0]!
  const {slots, rank, sharedK} = stackDims(o)
  const tensors = new Map<string, StackedTensor>()
  const named: Array<[string, StackedTensor | undefined]> = [
    [layoutNames.groupA(group), o.stacks.A],
    [layoutNames.moduleB(member), o.stacks.B],
    [layoutNames.groupAk(group), o.stacks.Ak],
    [layoutNames.moduleBk(member), o.stacks.Bk],
  ]
  for (const [name, t] of named) if (t) tensors.set(name, t)
  const tensor = (name: string): StackedTensor => {
    const t = tensors.get(name)
    if (!t) throw new Error(`strategy ${o.strategy.name} reads ${name}, which projection ${o.key} was not given`)
    return t
  }
  const declared = new Set<string>()
  const weight = (name: string): string => {
    if (!declared.has(name)) {
      const t = tensor(name)
      if ('location' in t) o.g.external(name, t)
      else o.g.constant(name, t.data, t.dims, t.type)
      declared.add(name)
    }
    return name
  }
  const ctx: FragmentContext = {
    g: o.g,
    tokens: o.tokens,
    form: o.form ?? defaultForm(o.tokens),
    ...(o.chunk ? {chunk: o.chunk} : {}),
    slots,
    rank,
    sharedK,
    routing: o.routing,
    weight,
    weightType: (name) => tensor(name).type,
  }
  return fragment(ctx, group, o.x).get(o.key)!
}

/** S, R and K from the stacks' dims, each checked against the projection's `in` and `out`. */
function stackDims(o: ProjectionDeltaOptions): {slots: number; rank: number; sharedK: number} {
  const {A, B, Ak, Bk} = o.stacks
  const expect = (what: string, t: StackedTensor | undefined, dims: Array<number | undefined>) => {
    if (t && (t.dims.length !== dims.length || dims.some((d, i) => d !== undefined && t.dims[i] !== d))) {
      throw new Error(`projection ${o.key}: ${what} has dims [${t.dims.join(', ')}], expected [${dims.map((d) => d ?? '·').join(', ')}]`)
    }
  }
  const slots = (A ?? Ak ?? B)?.dims[0] ?? 0
  const rank = A?.dims[1] ?? B?.dims[2] ?? 0
  const sharedK = Ak?.dims[1] ?? Bk?.dims[0] ?? 0
  expect('A', A, [slots, rank, o.in])
  expect('B', B, [slots, o.out, rank])
  expect("A'", Ak, [slots, sharedK, o.in])
  expect('Bk', Bk, [sharedK, o.out])
  return {slots, rank, sharedK}
}
