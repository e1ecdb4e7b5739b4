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
 *   its group at batch 1: its weights are read per token of the group);
 * - the llama.cpp peer (`PEER_TRAFFIC`) reads its GGUF's weights as stored
 *   (F32 4 bytes a value, F16 2, Q4_0 18 bytes per block of 32), its binary16
 *   KV cache once (no copy), and the one applied adapter's F16 factors once
 *   per call; like merged, it serves one adapter's rows per call.
 */
import type {BaseDtype} from './base-dtype.js'
import {linearWeightBytes} from './base-dtype.js'
import {Q4_0_BLOCK_SIZE, Q4_0_BYTES_PER_BLOCK} from '../quant/q4-0.js'

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

/** Bytes of the linear weights read once (projections and output head), each `[out, in]` weighing `bytes(out, in)`. */
function linearBytes(c: TrafficInput['config'], bytes: (out: number, inDim: number) => number): number {
  const q = c.heads * c.headDim
  const kv = c.kvHeads * c.headDim
  const perLayer = bytes(q, c.hidden) + 2 * bytes(kv, c.hidden) + bytes(c.hidden, q) + 2 * bytes(c.intermediate, c.hidden) + bytes(c.hidden, c.intermediate)
  return c.layers * perLayer + bytes(c.vocab, c.hidden)
}

/** Bytes of the linear weights read once (projections and output head), as the runtime's graph holds them. */
export function weightBytes(c: TrafficInput['config'], dtype: BaseDtype): number {
  return linearBytes(c, (out, inDim) => linearWeightBytes(out, inDim, dtype))
}

/** Bytes of the linear weights read once as the llama.cpp peer's GGUF stores them (F32, F16, or Q4_0 where rows are whole blocks). */
export function ggufWeightBytes(c: TrafficInput['config'], dtype: BaseDtype): number {
  return linearBytes(c, (out, inDim) => {
    if (dtype === 'q4' && inDim % Q4_0_BLOCK_SIZE === 0) return (out * inDim * Q4_0_BYTES_PER_BLOCK) / Q4_0_BLOCK_SIZE
    return out * inDim * (dtype === 'f16' ? 2 : 4)
  })
}

/** The llama.cpp peer's step: GGUF weights, its binary16 KV cache read once, `adapterBytes` of applied adapter factors. */
function llamaCppTraffic(i: TrafficInput, adapterBytes: number): StepTraffic {
  const weights = ggufWeightBytes(i.config, i.baseDtype)
  const kvCache = i.rows * i.context * 2 * i.config.layers * i.config.kvHeads * i.config.headDim * 2
  return {weights, kvCache, adapters: adapterBytes, total: weights + kvCache + adapterBytes}
}

/** A peer's whole step (its storage differs from the runtime's). */
export const PEER_TRAFFIC: Readonly<Record<string, (i: TrafficInput) => StepTraffic>> = Object.freeze({
  // one adapter's F16 factors (half the f32 bytes of `adapterBytes`) per call
  'llama.cpp': (i: TrafficInput) => llamaCppTraffic(i, i.adapterBytes / 2),
  'llama.cpp-base': (i: TrafficInput) => llamaCppTraffic(i, 0),
})

/**
 * A decode step's traffic under `strategy` (see the module comment).
 * @returns undefined for a strategy the table does not describe
 */
export function decodeTraffic(strategy: string, i: TrafficInput): StepTraffic | undefined {
  const peer = PEER_TRAFFIC[strategy]
  if (peer) return peer(i)
  const adapters = ADAPTER_TRAFFIC[strategy]
  if (!adapters) return undefined
  const weights = weightBytes(i.config, i.baseDtype)
  const kvCache = 3 * i.rows * i.context * 2 * i.config.layers * i.config.kvHeads * i.config.headDim * 4
  const a = adapters(i)
  return {weights, kvCache, adapters: a, total: weights + kvCache + a}
}
