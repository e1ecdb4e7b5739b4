/**
 * `shared-b`: routing input `slots [B]`; gather each request's A'
 * `[S, G·K, in]` (scaling folded in) as gather does its A, then one plain
 * MatMul per member with the module's shared `[K, out]`: no per-request B.
 */
import {SLOTS_INPUT, gatherDeltas, rowsOf, slotFeeds, wholeWeight} from '../fragments.js'
import {layoutNames} from '../lora-layout.js'
import {FragmentContext, FragmentMember, defineStrategy} from '../strategy.js'

/** The table entry of `shared-b`. */
export const sharedB = defineStrategy({
  name: 'shared-b',
  summary: "per-adapter A', one shared B",
  routingInputs: [SLOTS_INPUT],
  feeds: slotFeeds,
  fragment: (ctx, group, x) => gatherDeltas(ctx, group, x, ctx.routing[SLOTS_INPUT.name]!, layoutNames.groupAk(group), ctx.sharedK, (m, h) => sharedProduct(ctx, m, h)),
  reference: 'shared',
  weights: ['shared'],
  chunkedDecode: true,
})

/** Shared B: one plain MatMul `[N, K] @ [K, out]`. */
function sharedProduct(ctx: FragmentContext, m: FragmentMember, h: string): string {
  return ctx.g.op('MatMul', [rowsOf(ctx, h, ctx.sharedK), wholeWeight(ctx, layoutNames.moduleBk(m))])
}
