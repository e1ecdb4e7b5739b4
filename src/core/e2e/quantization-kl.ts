/**
 * How far a quantized (or f16) base moves the model: the mean KL divergence
 * KL(f32 ‖ variant) of the next-token distributions at every position of a
 * few requests' sequences (prompt + the reference's generated tokens), both
 * bases with the requests' own adapters unmerged, as they are served.
 */
import type {ExecutionProvider} from '../onnx/session.js'
import {DecoderModel} from '../runtime/decoder-model.js'
import type {DecoderWeights} from '../runtime/decoder-weights.js'
import type {E2eAdapterSet} from './adapter-set.js'
import {meanKl} from './kl.js'
import type {ReferenceTokens} from './reference-run.js'
import type {E2eRequest} from './requests.js'
import {RowFactorDeltas} from './row-factor-deltas.js'

/** The bases, adapters and sequences to compare. */
export interface QuantizationKlOptions {
  readonly f32: DecoderWeights
  readonly variant: DecoderWeights
  readonly adapters: E2eAdapterSet
  readonly requests: readonly E2eRequest[]
  /** Each request's generated tokens (its sequence is the prompt and these, less the last). */
  readonly tokens: ReadonlyMap<string, ReferenceTokens>
  readonly ep: ExecutionProvider
  readonly threads: number
  readonly maxPositions: number
}

/** Mean KL(f32 ‖ variant) per position, nats (see the module comment). */
export async function quantizationKl(o: QuantizationKlOptions): Promise<{mean: number; positions: number; requests: number}> {
  const sequences = o.requests.map((r) => [...r.prompt, ...o.tokens.get(r.id)!.tokens.slice(0, -1)])
  const factors = []
  for (const r of o.requests) factors.push(r.adapter === null ? null : await o.adapters.factors(r.adapter, 'stacks'))
  const logits: Float32Array[][] = []
  for (const weights of [o.f32, o.variant]) {
    const deltas = new RowFactorDeltas(o.adapters.modules, o.adapters.rank)
    const model = await DecoderModel.create({weights, deltas, ep: o.ep, threads: o.threads, maxPositions: o.maxPositions})
    try {
      await deltas.setRows(factors)
      logits.push((await model.forward({tokens: sequences, logits: 'all'})).logits)
    } finally {
      await model.release()
    }
  }
  return {...meanKl(logits[0]!, logits[1]!, o.f32.config.vocab), requests: sequences.length}
}
