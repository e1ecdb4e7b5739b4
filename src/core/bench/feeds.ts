/**
 * A routing step as the inputs of each graph strategy: per-request slots,
 * segments (requests grouped by adapter), or a `[N, S]` routing mask.
 * Token rows are request-major: request b owns rows b·T … b·T+T−1.
 */
import type {GraphStrategy} from '../onnx/routed-lora.js'
import type {RoutingStep} from './workload.js'

export interface RoutingArrays {
  [name: string]: {data: Float32Array | BigInt64Array; dims: number[]}
}

/** Slots as int64 `[B]`. */
export function slotFeed(step: RoutingStep): BigInt64Array {
  const out = new BigInt64Array(step.slots.length)
  for (let b = 0; b < step.slots.length; b++) out[b] = BigInt(step.slots[b]!)
  return out
}

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

/** The `[N, S]` mask: one-hot rows (slot 0 rows all zero), or the request's mixture weights. */
export function maskFeed(step: RoutingStep, tokens: number, slots: number): Float32Array {
  const B = step.slots.length
  const mask = new Float32Array(B * tokens * slots)
  for (let b = 0; b < B; b++) {
    const mix = step.mixtures?.[b] ?? [{slot: step.slots[b]!, weight: 1}]
    for (let t = 0; t < tokens; t++) {
      const row = (b * tokens + t) * slots
      for (const {slot, weight} of mix) if (slot !== 0) mask[row + slot]! += weight
    }
  }
  return mask
}

/** Every routing input of `strategy` for `step`. */
export function routingArrays(strategy: GraphStrategy, step: RoutingStep, tokens: number, slots: number): RoutingArrays {
  const B = step.slots.length
  switch (strategy) {
    case 'base':
      return {}
    case 'gather':
    case 'shared-b':
      return {slots: {data: slotFeed(step), dims: [B]}}
    case 'segment': {
      const s = segmentFeed(step, tokens)
      return {seg_slots: {data: s.slots, dims: [s.slots.length]}, seg_rows: {data: s.rows, dims: [s.rows.length]}, unperm: {data: s.unperm, dims: [s.unperm.length]}}
    }
    case 'mask':
      return {mask: {data: maskFeed(step, tokens, slots), dims: [B * tokens, slots]}}
  }
}
