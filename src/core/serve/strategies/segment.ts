/**
 * `segment`: requests grouped by adapter (SGMV's layout, padded to equal
 * lengths), one gather per distinct adapter. Routing inputs `seg_slots [G]`
 * (distinct slots), `seg_rows [G·L]` (token rows by segment) and
 * `unperm [N]` (each row's place in the grouped layout).
 */
import {gatherWeight, member} from '../fragments.js'
import {layoutNames} from '../lora-layout.js'
import type {RoutingStep} from '../routing.js'
import {FragmentContext, FragmentGroup, defineStrategy} from '../strategy.js'

/** The table entry of `segment`. */
export const segment = defineStrategy({
  name: 'segment',
  summary: 'one product per distinct adapter',
  routingInputs: [
    {name: 'seg_slots', type: 'int64', dims: () => ['segments']},
    {name: 'seg_rows', type: 'int64', dims: () => ['segment_rows']},
    {name: 'unperm', type: 'int64', dims: () => ['rows']},
  ],
  feeds: (step, tokens) => {
    const s = segmentFeed(step, tokens)
    return {seg_slots: {data: s.slots, dims: [s.slots.length]}, seg_rows: {data: s.rows, dims: [s.rows.length]}, unperm: {data: s.unperm, dims: [s.unperm.length]}}
  },
  fragment: segmentDeltas,
  reference: 'stacks',
  weights: ['stacks'],
})

/** The segment strategy's routing inputs for one step. */
export interface Segments {
  /** Distinct slots in order of first appearance `[G]`. */
  slots: BigInt64Array
  /** Token rows grouped by segment, each padded to L rows with its first row `[G·L]`. */
  rows: BigInt64Array
  /** Position of each token row in the grouped layout `[N]`. */
  unperm: BigInt64Array
  rowsPerSegment: number
}

/** Group requests by adapter for the segment strategy (SGMV's layout, padded to equal lengths). */
export function segmentFeed(step: RoutingStep, tokens: number): Segments {
  const order: number[] = []
  const members = new Map<number, number[]>()
  step.slots.forEach((slot, b) => {
    let list = members.get(slot)
    if (!list) {
      list = []
      members.set(slot, list)
      order.push(slot)
    }
    list.push(b)
  })
  const L = Math.max(...[...members.values()].map((l) => l.length)) * tokens
  const G = order.length
  const rows = new BigInt64Array(G * L)
  const unperm = new BigInt64Array(step.slots.length * tokens)
  order.forEach((slot, g) => {
    const requests = members.get(slot)!
    let i = 0
    for (const b of requests) {
      for (let t = 0; t < tokens; t++, i++) {
        rows[g * L + i] = BigInt(b * tokens + t)
        unperm[b * tokens + t] = BigInt(g * L + i)
      }
    }
    for (; i < L; i++) rows[g * L + i] = BigInt(requests[0]! * tokens)
  })
  return {slots: BigInt64Array.from(order.map(BigInt)), rows, unperm, rowsPerSegment: L}
}

/**
 * Segments: rows grouped by adapter into `[G, L, in]` (`seg_rows`, padding
 * rows repeat a real row), one gather per distinct adapter, results put
 * back in request order with `unperm`.
 */
function segmentDeltas(ctx: FragmentContext, group: FragmentGroup, x: string): Map<string, string> {
  const {g} = ctx
  const {seg_slots: segSlots, seg_rows: segRows, unperm} = ctx.routing as Record<'seg_slots' | 'seg_rows' | 'unperm', string>
  const G = group.members.length
  const R = ctx.rank
  const a = gatherWeight(ctx, layoutNames.groupA(group), segSlots)
  // rows per segment L = |seg_rows| / |seg_slots|: reshape with the segment count taken from seg_slots
  const segCount = g.op('Shape', [segSlots])
  const shape3 = g.op('Concat', [segCount, g.ints(g.fresh('c'), [-1, group.in])], {axis: 0})
  const xg = g.op('Reshape', [g.op('Gather', [x, segRows], {axis: 0}), shape3])
  const out = new Map<string, string>()
  const decodeLike = ctx.form === 'gemv'
  // decode: weights stay the left operand, activations are transposed (small); prefill: weights transposed
  const h = decodeLike ? g.op('MatMul', [a, g.op('Transpose', [xg], {perm: [0, 2, 1]})]) : g.op('MatMul', [xg, g.op('Transpose', [a], {perm: [0, 2, 1]})])
  group.members.forEach((m, j) => {
    const hj = member(g, h, j, G, R, decodeLike ? 1 : 2)
    const b = gatherWeight(ctx, layoutNames.moduleB(m), segSlots)
    const d = decodeLike ? g.op('Transpose', [g.op('MatMul', [b, hj])], {perm: [0, 2, 1]}) : g.op('MatMul', [hj, g.op('Transpose', [b], {perm: [0, 2, 1]})])
    const flat = g.op('Reshape', [d, g.ints(g.fresh('shape'), [-1, m.out])])
    out.set(m.key, g.op('Gather', [flat, unperm], {axis: 0}))
  })
  return out
}
