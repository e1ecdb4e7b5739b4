/**
 * `mask`: routing input `mask [N, S]` (one-hot or weighted rows); products
 * with every slot's A and B, weighted by the mask: correct for any mask,
 * including per-request mixtures of adapters, but the cost grows with S.
 * Its all-slot reshapes need working copies of the stacks (about three
 * times their bytes), so the bench leaves it out by default when they
 * would not fit.
 */
import {member, wholeWeight} from '../fragments.js'
import {layoutNames} from '../lora-layout.js'
import type {RoutingStep} from '../routing.js'
import {FragmentContext, FragmentGroup, defineStrategy} from '../strategy.js'

/** The table entry of `mask`. */
export const mask = defineStrategy({
  name: 'mask',
  summary: 'one-hot mask over all slots',
  routingInputs: [{name: 'mask', type: 'float32', dims: (slots) => ['rows', slots]}],
  feeds: (step, tokens, slots) => ({mask: {data: maskFeed(step, tokens, slots), dims: [step.slots.length * tokens, slots]}}),
  fragment: maskDeltas,
  reference: 'stacks',
  weights: ['stacks'],
  workingMemory: {stackCopies: 3, what: 'its all-slot copies'},
})

/** The `[N, S]` mask: one-hot rows (slot 0 rows all zero), or the request's mixture weights. */
export function maskFeed(step: RoutingStep, tokens: number, slots: number): Float32Array {
  const B = step.slots.length
  const out = new Float32Array(B * tokens * slots)
  for (let b = 0; b < B; b++) {
    const mix = step.mixtures?.[b] ?? [{slot: step.slots[b]!, weight: 1}]
    for (let t = 0; t < tokens; t++) {
      const row = (b * tokens + t) * slots
      for (const {slot, weight} of mix) if (slot !== 0) out[row + slot]! += weight
    }
  }
  return out
}

/** Mask: `h = x @ A_allᵀ` over every slot, weighted by `mask [N, S]`, then `@ B_all`. */
function maskDeltas(ctx: FragmentContext, group: FragmentGroup, x: string): Map<string, string> {
  const {g} = ctx
  const G = group.members.length
  const R = ctx.rank
  const S = ctx.slots
  const a2 = g.op('Reshape', [wholeWeight(ctx, layoutNames.groupA(group)), g.ints(g.fresh('shape'), [S * G * R, group.in])])
  const hall = g.op('Gemm', [x, a2], {transB: 1})
  const h3 = g.op('Reshape', [hall, g.ints(g.fresh('shape'), [-1, S, G * R])])
  const hm = g.op('Mul', [h3, g.op('Unsqueeze', [ctx.routing.mask!, g.ints(g.fresh('axes'), [2])])])
  const out = new Map<string, string>()
  group.members.forEach((m, j) => {
    const hj = g.op('Reshape', [member(g, hm, j, G, R, 2), g.ints(g.fresh('shape'), [-1, S * R])])
    const bt = g.op('Transpose', [wholeWeight(ctx, layoutNames.moduleB(m))], {perm: [0, 2, 1]})
    const b2 = g.op('Reshape', [bt, g.ints(g.fresh('shape'), [S * R, m.out])])
    out.set(m.key, g.op('MatMul', [hj, b2]))
  })
  return out
}
