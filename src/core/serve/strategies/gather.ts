/**
 * `gather`: routing input `slots [B]`; one Gather of the group's fused A per
 * request, one batched MatMul for all members, then per member a Gather of
 * its s·B and a batched MatMul (`fragments.ts`, `gatherDeltas`).
 */
import {SLOTS_INPUT, gatherDeltas, gatherWeight, rowsOf, slotFeeds} from '../fragments.js'
import {layoutNames} from '../lora-layout.js'
import {FragmentContext, FragmentMember, defineStrategy} from '../strategy.js'

/** The table entry of `gather`. */
export const gather = defineStrategy({
  name: 'gather',
  summary: 'per-request Gather + batched MatMul',
  routingInputs: [SLOTS_INPUT],
  feeds: slotFeeds,
  fragment: (ctx, group, x) => gatherDeltas(ctx, group, x, ctx.routing[SLOTS_INPUT.name]!, layoutNames.groupA(group), ctx.rank, (m, h, index) => gatherB(ctx, m, h, index)),
  reference: 'stacks',
  weights: ['stacks'],
  chunkedDecode: true,
})

/** Per-request B: gemv `B[b] @ h[b]` (`[B, out, R] @ [B, R, T]`), gemm `h[b] @ B[b]ᵀ`. */
function gatherB(ctx: FragmentContext, m: FragmentMember, h: string, index: string): string {
  const {g} = ctx
  const b = gatherWeight(ctx, layoutNames.moduleB(m), index)
  const d = ctx.form === 'gemv' ? g.op('MatMul', [b, h]) : g.op('MatMul', [h, g.op('Transpose', [b], {perm: [0, 2, 1]})])
  return rowsOf(ctx, d, m.out)
}
