/**
 * Building blocks of the strategies (`strategies/*.ts`): the per-request
 * slots input that gather and shared-b share; in their graph fragments,
 * reading stacked weights (f16 stacks are gathered in f16 and cast to f32
 * right after each Gather, so only half the bytes come from memory and the
 * products stay f32), member slices of fused products, and the per-request
 * gathered product that gather and shared-b share.
 *
 * Per-request products (`gatherDeltas`): one Gather of the group's fused A
 * per request, one batched MatMul for all members, then each member's B
 * side. Decode (T = 1) keeps weights as the left operand (no weight is
 * transposed or packed: `A[b] @ x[b]ᵀ`, `B[b] @ h[b]`); prefill transposes
 * the gathered weights, which is cheaper than moving T rows.
 */
import {DTYPES} from '../dtype.js'
import type {ElemType, GraphBuilder} from '../onnx/graph-builder.js'
import type {RoutingStep} from './routing.js'
import type {FragmentContext, FragmentGroup, FragmentMember, RoutingArrays, RoutingInput} from './strategy.js'

/** The per-request slots `[B]` (int64), the routing input of per-request gathers. */
export const SLOTS_INPUT: RoutingInput = Object.freeze({name: 'slots', type: 'int64', dims: () => ['requests']})

/** Slots as int64 `[B]`. */
export function slotFeed(step: RoutingStep): BigInt64Array {
  const out = new BigInt64Array(step.slots.length)
  for (let b = 0; b < step.slots.length; b++) out[b] = BigInt(step.slots[b]!)
  return out
}

/** The feeds of `SLOTS_INPUT`. */
export function slotFeeds(step: RoutingStep): RoutingArrays {
  return {[SLOTS_INPUT.name]: {data: slotFeed(step), dims: [step.slots.length]}}
}

/** ONNX `TensorProto.DataType.FLOAT`, the `to` of a Cast. */
const FLOAT = DTYPES.F32.onnx.code

/** `Gather(value, index)` along axis 0, cast to f32 when `type` is float16. */
export function gatherAsFloat(g: GraphBuilder, value: string, type: ElemType, index: string): string {
  const rows = g.op('Gather', [value, index], {axis: 0})
  return type === 'float16' ? g.op('Cast', [rows], {to: FLOAT}) : rows
}

/** `Gather(weight, index)` along axis 0, cast to f32 when the weight is stored as f16. */
export function gatherWeight(ctx: FragmentContext, name: string, index: string): string {
  return gatherAsFloat(ctx.g, ctx.weight(name), ctx.weightType(name), index)
}

/** The whole weight as f32 (cast when stored as f16). */
export function wholeWeight(ctx: FragmentContext, name: string): string {
  return ctx.weightType(name) === 'float16' ? ctx.g.op('Cast', [ctx.weight(name)], {to: FLOAT}) : ctx.weight(name)
}

/** The member slice `[…, width]` j of a fused product along `axis`. */
export function member(g: GraphBuilder, h: string, j: number, count: number, width: number, axis: number): string {
  if (count === 1) return h
  return g.op('Slice', [h, g.ints(g.fresh('st'), [j * width]), g.ints(g.fresh('en'), [(j + 1) * width]), g.ints(g.fresh('ax'), [axis])])
}

/** Turns a member's slice of the A-side product `h` into its delta `[N, out]`. */
export type BSide = (m: FragmentMember, h: string, index: string) => string

/**
 * A side by request. `gemv`: `h = A[b] @ x[b]ᵀ` is `[B, G·W, T]` (for decode x is
 * only reshaped; for prefill its rows are transposed); `gemm`: `h = x[b] @ A[b]ᵀ`
 * is `[B, T, G·W]`. `bSide` turns a member's slice of `h` into `[N, out]`.
 * @param index the per-request slots `[B]` (int64)
 * @param aName layout name of the group's fused A-side stack `[S, G·W, in]`
 * @param width rows W per member in that stack
 */
export function gatherDeltas(ctx: FragmentContext, group: FragmentGroup, x: string, index: string, aName: string, width: number, bSide: BSide): Map<string, string> {
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
function requestRows(ctx: FragmentContext, x: string, index: string, width: number): string {
  const {g} = ctx
  return g.op('Reshape', [x, g.op('Concat', [g.op('Shape', [index]), g.ints(g.fresh('c'), [-1, width])], {axis: 0})])
}

/** `[B, W, T]` (gemv) or `[B, T, W]` (gemm) as `[N, W]` rows. */
export function rowsOf(ctx: FragmentContext, h: string, width: number): string {
  const {g} = ctx
  const t = ctx.form === 'gemv' && ctx.tokens !== 1 ? g.op('Transpose', [h], {perm: [0, 2, 1]}) : h
  return g.op('Reshape', [t, g.ints(g.fresh('shape'), [-1, width])])
}
