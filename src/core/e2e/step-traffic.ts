/**
 * Bytes one decode step moves through memory, by part, for a strategy: an
 * estimate from the shapes (not a measurement), so that a measured step
 * time can be set against what memory bandwidth allows. On a CPU a decode
 * step at these batch sizes is bound by memory traffic, not arithmetic.
 *
 * - weights: every linear weight read once (projections and the output
 *   head; the embedding is a row lookup): 4 bytes a value in f32/f16
 *   storage (the graph computes in f32), 4.5 bits a value in q4 (4-bit codes
 *   and an f32 scale per 32);
 * - KV cache: attention reads each row's past once, and the grown cache is
 *   copied into the present outputs (read and written): 3 × rows × past
 *   positions × bytes per position;
 * - adapters: what the strategy gathers (`ADAPTER_TRAFFIC`): a gathered
 *   slot is read from the stacks, written to its copy and read again by
 *   the product (3×); per request for gather and shared-b, per distinct
 *   adapter for segment, every slot for mask, nothing per step for base
 *   and merged (merged pays a merge per adapter group instead, and serves
 *   its group at batch 1: its weights are read per token of the group).
 */
import type {BaseDtype} from './base-dtype.js'
import {linearWeightBytes} from './base-dtype.js'

/** The shapes a step's traffic depends on. */
export interface TrafficInput {
  readonly config: {hidden: number; intermediate: number; layers: number; heads: number; kvHeads: number; headDim: number; vocab: number}
  readonly baseDtype: BaseDtype
  /** Rows (requests) in the decode step. */
  readonly rows: number
  /** Mean past positions per row. */
  readonly context: number
  /** Distinct adapters among the rows. */
  readonly distinct: number
  /** Slots S of the stacks (adapters + 1). */
  readonly slots: number
  /** Bytes of one adapter's routed factors (A and s·B of every module, f32). */
  readonly adapterBytes: number
  /** Bytes of one adapter's A′ (shared-B form), and of the shared Uᵀ of every module. */
  readonly sharedABytes: number
  readonly sharedBBytes: number
}

/** A step's bytes by part. */
export interface StepTraffic {
  weights: number
  kvCache: number
  adapters: number
  total: number
}

/** Bytes of adapter weights a strategy moves per decode step. */
export const ADAPTER_TRAFFIC: Readonly<Record<string, (i: TrafficInput) => number>> = Object.freeze({
  base: () => 0,
  gather: (i: TrafficInput) => 3 * i.rows * i.adapterBytes,
  segment: (i: TrafficInput) => 3 * i.distinct * i.adapterBytes,
  'shared-b': (i: TrafficInput) => 3 * i.rows * i.sharedABytes + i.sharedBBytes,
  mask: (i: TrafficInput) => i.slots * i.adapterBytes,
  merged: () => 0,
})

/** Bytes of the linear weights read once (projections and output head). */
export function weightBytes(c: TrafficInput['config'], dtype: BaseDtype): number {
  const q = c.heads * c.headDim
  const kv = c.kvHeads * c.headDim
  const perLayer = linearWeightBytes(q, c.hidden, dtype) + 2 * linearWeightBytes(kv, c.hidden, dtype) + linearWeightBytes(c.hidden, q, dtype) + 2 * linearWeightBytes(c.intermediate, c.hidden, dtype) + linearWeightBytes(c.hidden, c.intermediate, dtype)
  return c.layers * perLayer + linearWeightBytes(c.vocab, c.hidden, dtype)
}

/**
 * A decode step's traffic under `strategy` (see the module comment).
 * @returns undefined for a strategy the table does not describe
 */
export function decodeTraffic(strategy: string, i: TrafficInput): StepTraffic | undefined {
  const adapters = ADAPTER_TRAFFIC[strategy]
  if (!adapters) return undefined
  const weights = weightBytes(i.config, i.baseDtype)
  const kvCache = 3 * i.rows * i.context * 2 * i.config.layers * i.config.kvHeads * i.config.headDim * 4
  const a = adapters(i)
  return {weights, kvCache, adapters: a, total: weights + kvCache + a}
}
