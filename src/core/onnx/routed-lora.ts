/**
 * Routed-LoRA graph fragments: given a group's input `x` `[N, in]` (N =
 * B·T token rows, request-major) they add the nodes that compute every
 * member's delta `[N, out]` for the strategy's routing inputs.
 *
 * - gather: `slots [B]`; one Gather of the group's fused A per request, one
 *   batched MatMul for all members, then per member a Gather of B and a
 *   batched MatMul. Decode (T = 1) keeps weights as the left operand (no
 *   weight is transposed or packed: `A[b] @ x[b]ᵀ`, `B[b] @ h[b]`); prefill
 *   transposes the gathered weights, which is cheaper than moving T rows.
 * - segment: `seg_slots [G]`, `seg_rows [G·L]`, `unperm [N]`; requests grouped
 *   by adapter (padded to L rows per segment), one gather per distinct adapter.
 * - shared-b: `slots [B]`; gather A' `[S, G·K, in]` per request, then one plain
 *   MatMul per member with the shared `[K, out]`.
 * - mask: `mask [N, S]` (one-hot or weighted); products with every slot's A
 *   and B, weighted by the mask: correct for any mask, cost grows with S.
 *
 * Stacks stored as f16 (`weightType`) are gathered in f16 and cast to f32
 * right after each Gather, so only half the bytes come from memory and the
 * products stay f32; mask casts the whole stack (onnxruntime may fold that
 * into an f32 copy when the session loads).
 */
import {ElemType, GraphBuilder} from './graph-builder.js'
import {GroupSpec, ModuleSpec, layoutNames} from './lora-layout.js'

/** Strategies that are one ONNX graph over the stacks. */
export const GRAPH_STRATEGIES = ['base', 'gather', 'segment', 'shared-b', 'mask'] as const
export type GraphStrategy = (typeof GRAPH_STRATEGIES)[number]

/** Routing inputs of each strategy (besides `x`). */
export const ROUTING_INPUTS: Readonly<Record<GraphStrategy, readonly string[]>> = Object.freeze({
  base: [],
  gather: ['slots'],
  segment: ['seg_slots', 'seg_rows', 'unperm'],
  'shared-b': ['slots'],
  mask: ['mask'],
})

/** How per-request products are laid out (see `RoutingContext.form`). */
export type MatmulForm = 'gemv' | 'gemm'

/** The form that suits T tokens per request. */
export function defaultForm(tokens: number): MatmulForm {
  return tokens === 1 ? 'gemv' : 'gemm'
}

export interface RoutingContext {
  g: GraphBuilder
  strategy: Exclude<GraphStrategy, 'base'>
  /** Tokens per request T (1 = decode). */
  tokens: number
  /**
   * `gemv`: weights stay the left operand (`A[b] @ x[b]ᵀ`), so each product is
   * MLAS's one-column kernel reading the gathered weights in place (decode);
   * `gemm`: the gathered weights are transposed and packed once per request
   * and shared by its T tokens (prefill).
   */
  form: MatmulForm
  /**
   * Decode only: gather and multiply requests in static chunks of
   * `chunk.size` (of a batch of `chunk.batch`), so that each chunk's gathered
   * weights are still in cache when its product reads them.
   */
  chunk?: {batch: number; size: number}
  slots: number
  rank: number
  sharedK: number
  /** Add an initializer from the weight set (once) and return its name. */
  weight(name: string): string
  /** The element type of a weight-set tensor (stacks may be float16). */
  weightType(name: string): ElemType
}

/** ONNX `TensorProto.DataType.FLOAT`, the `to` of a Cast. */
const FLOAT = 1

/** `Gather(weight, index)` along axis 0, cast to f32 when the weight is stored as f16. */
function gatherWeight(ctx: RoutingContext, name: string, index: string): string {
  const rows = ctx.g.op('Gather', [ctx.weight(name), index], {axis: 0})
  return ctx.weightType(name) === 'float16' ? ctx.g.op('Cast', [rows], {to: FLOAT}) : rows
}

/** The whole weight as f32 (cast when stored as f16). */
function wholeWeight(ctx: RoutingContext, name: string): string {
  return ctx.weightType(name) === 'float16' ? ctx.g.op('Cast', [ctx.weight(name)], {to: FLOAT}) : ctx.weight(name)
}

/** Declare the routing inputs of `strategy` on `g`. */
export function declareRoutingInputs(g: GraphBuilder, strategy: GraphStrategy, slots: number): void {
  if (strategy === 'gather' || strategy === 'shared-b') g.input('slots', 'int64', ['requests'])
  if (strategy === 'segment') {
    g.input('seg_slots', 'int64', ['segments'])
    g.input('seg_rows', 'int64', ['segment_rows'])
    g.input('unperm', 'int64', ['rows'])
  }
  if (strategy === 'mask') g.input('mask', 'float32', ['rows', slots])
}

/** Per-member deltas `[N, out]` of `group` for input `x` `[N, in]`, keyed by module key. */
export function addGroupDeltas(ctx: RoutingContext, group: GroupSpec, x: string): Map<string, string> {
  switch (ctx.strategy) {
    case 'gather':
      return gatherDeltas(ctx, group, x, 'slots', layoutNames.groupA(group), ctx.rank, (m, h, index) => gatherB(ctx, m, h, index))
    case 'shared-b':
      return gatherDeltas(ctx, group, x, 'slots', layoutNames.groupAk(group), ctx.sharedK, (m, h) => sharedB(ctx, m, h))
    case 'segment':
      return segmentDeltas(ctx, group, x)
    case 'mask':
      return maskDeltas(ctx, group, x)
  }
}

/** The member slice `[…, width]` j of a fused product along `axis`. */
function member(g: GraphBuilder, h: string, j: number, count: number, width: number, axis: number): string {
  if (count === 1) return h
  return g.op('Slice', [h, g.ints(g.fresh('st'), [j * width]), g.ints(g.fresh('en'), [(j + 1) * width]), g.ints(g.fresh('ax'), [axis])])
}

/**
 * A side by request. `gemv`: `h = A[b] @ x[b]ᵀ` is `[B, G·W, T]` (for decode x is
 * only reshaped; for prefill its rows are transposed); `gemm`: `h = x[b] @ A[b]ᵀ`
 * is `[B, T, G·W]`. `bSide` turns a member's slice of `h` into `[N, out]`.
 */
function gatherDeltas(ctx: RoutingContext, group: GroupSpec, x: string, index: string, aName: string, width: number, bSide: (m: ModuleSpec, h: string, index: string) => string): Map<string, string> {
  const {g} = ctx
  const G = group.members.length
  const out = new Map<string, string>()
  if (ctx.form === 'gemv' && ctx.tokens === 1 && ctx.chunk && ctx.chunk.size < ctx.chunk.batch) {
    const parts = new Map<string, string[]>(group.members.map((m) => [m.key, []]))
    for (let c0 = 0; c0 < ctx.chunk.batch; c0 += ctx.chunk.size) {
      const range = [g.ints(g.fresh('st'), [c0]), g.ints(g.fresh('en'), [Math.min(ctx.chunk.batch, c0 + ctx.chunk.size)]), g.ints(g.fresh('ax'), [0])]
      const idx = g.op('Slice', [index, ...range])
      const xc = g.op('Reshape', [g.op('Slice', [x, ...range]), g.ints(g.fresh('shape'), [-1, group.in, 1])])
      const h = g.op('MatMul', [gatherWeight(ctx, aName, idx), xc])
      group.members.forEach((m, j) => parts.get(m.key)!.push(bSide(m, member(g, h, j, G, width, 1), idx)))
    }
    for (const m of group.members) out.set(m.key, g.op('Concat', parts.get(m.key)!, {axis: 0}))
    return out
  }
  const a = gatherWeight(ctx, aName, index)
  if (ctx.form === 'gemv') {
    const xc = ctx.tokens === 1 ? g.op('Reshape', [x, g.ints(g.fresh('shape'), [-1, group.in, 1])]) : g.op('Transpose', [requestRows(ctx, x, index, group.in)], {perm: [0, 2, 1]})
    const h = g.op('MatMul', [a, xc])
    group.members.forEach((m, j) => out.set(m.key, bSide(m, member(g, h, j, G, width, 1), index)))
  } else {
    const h = g.op('MatMul', [requestRows(ctx, x, index, group.in), g.op('Transpose', [a], {perm: [0, 2, 1]})])
    group.members.forEach((m, j) => out.set(m.key, bSide(m, member(g, h, j, G, width, 2), index)))
  }
  return out
}

/** `x` as `[B, T, in]`, B from the routing input, so one graph serves any T (warm-up runs T = 1). */
function requestRows(ctx: RoutingContext, x: string, index: string, width: number): string {
  const {g} = ctx
  return g.op('Reshape', [x, g.op('Concat', [g.op('Shape', [index]), g.ints(g.fresh('c'), [-1, width])], {axis: 0})])
}

/** `[B, W, T]` (gemv) or `[B, T, W]` (gemm) as `[N, W]` rows. */
function rowsOf(ctx: RoutingContext, h: string, width: number): string {
  const {g} = ctx
  const t = ctx.form === 'gemv' && ctx.tokens !== 1 ? g.op('Transpose', [h], {perm: [0, 2, 1]}) : h
  return g.op('Reshape', [t, g.ints(g.fresh('shape'), [-1, width])])
}

/** Per-request B: gemv `B[b] @ h[b]` (`[B, out, R] @ [B, R, T]`), gemm `h[b] @ B[b]ᵀ`. */
function gatherB(ctx: RoutingContext, m: ModuleSpec, h: string, index: string): string {
  const {g} = ctx
  const b = gatherWeight(ctx, layoutNames.moduleB(m), index)
  const d = ctx.form === 'gemv' ? g.op('MatMul', [b, h]) : g.op('MatMul', [h, g.op('Transpose', [b], {perm: [0, 2, 1]})])
  return rowsOf(ctx, d, m.out)
}

/** Shared B: one plain MatMul `[N, K] @ [K, out]`. */
function sharedB(ctx: RoutingContext, m: ModuleSpec, h: string): string {
  return ctx.g.op('MatMul', [rowsOf(ctx, h, ctx.sharedK), wholeWeight(ctx, layoutNames.moduleBk(m))])
}

/**
 * Segments: rows grouped by adapter into `[G, L, in]` (`seg_rows`, padding
 * rows repeat a real row), one gather per distinct adapter, results put
 * back in request order with `unperm`.
 */
function segmentDeltas(ctx: RoutingContext, group: GroupSpec, x: string): Map<string, string> {
  const {g} = ctx
  const G = group.members.length
  const R = ctx.rank
  const a = gatherWeight(ctx, layoutNames.groupA(group), 'seg_slots')
  // rows per segment L = |seg_rows| / |seg_slots|: reshape with the segment count taken from seg_slots
  const segCount = g.op('Shape', ['seg_slots'])
  const shape3 = g.op('Concat', [segCount, g.ints(g.fresh('c'), [-1, group.in])], {axis: 0})
  const xg = g.op('Reshape', [g.op('Gather', [x, 'seg_rows'], {axis: 0}), shape3])
  const out = new Map<string, string>()
  const decodeLike = ctx.form === 'gemv'
  // decode: weights stay the left operand, activations are transposed (small); prefill: weights transposed
  const h = decodeLike ? g.op('MatMul', [a, g.op('Transpose', [xg], {perm: [0, 2, 1]})]) : g.op('MatMul', [xg, g.op('Transpose', [a], {perm: [0, 2, 1]})])
  group.members.forEach((m, j) => {
    const hj = member(g, h, j, G, R, decodeLike ? 1 : 2)
    const b = gatherWeight(ctx, layoutNames.moduleB(m), 'seg_slots')
    const d = decodeLike ? g.op('Transpose', [g.op('MatMul', [b, hj])], {perm: [0, 2, 1]}) : g.op('MatMul', [hj, g.op('Transpose', [b], {perm: [0, 2, 1]})])
    const flat = g.op('Reshape', [d, g.ints(g.fresh('shape'), [-1, m.out])])
    out.set(m.key, g.op('Gather', [flat, 'unperm'], {axis: 0}))
  })
  return out
}

/** Mask: `h = x @ A_allᵀ` over every slot, weighted by `mask [N, S]`, then `@ B_all`. */
function maskDeltas(ctx: RoutingContext, group: GroupSpec, x: string): Map<string, string> {
  const {g} = ctx
  const G = group.members.length
  const R = ctx.rank
  const S = ctx.slots
  const a2 = g.op('Reshape', [wholeWeight(ctx, layoutNames.groupA(group)), g.ints(g.fresh('shape'), [S * G * R, group.in])])
  const hall = g.op('Gemm', [x, a2], {transB: 1})
  const h3 = g.op('Reshape', [hall, g.ints(g.fresh('shape'), [-1, S, G * R])])
  const hm = g.op('Mul', [h3, g.op('Unsqueeze', ['mask', g.ints(g.fresh('axes'), [2])])])
  const out = new Map<string, string>()
  group.members.forEach((m, j) => {
    const hj = g.op('Reshape', [member(g, hm, j, G, R, 2), g.ints(g.fresh('shape'), [-1, S * R])])
    const bt = g.op('Transpose', [wholeWeight(ctx, layoutNames.moduleB(m))], {perm: [0, 2, 1]})
    const b2 = g.op('Reshape', [bt, g.ints(g.fresh('shape'), [S * R, m.out])])
    out.set(m.key, g.op('MatMul', [hj, b2]))
  })
  return out
}
