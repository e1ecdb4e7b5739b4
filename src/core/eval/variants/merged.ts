/** `merged:f16|bf16`: the adapters merged into the weights in float64, every tensor written in 16 bits (`lora merge --dtype`). */
import {mergedWeights} from '../../runtime/lora-deltas.js'
import {ROUNDING_DTYPES, RoundingDtype, roundedWeights} from '../variant-weights.js'
import {VariantKind, built} from './variant-kind.js'

/** The `merged:f16|bf16` kind. */
export const merged: VariantKind = {
  name: 'merged',
  description: 'adapters merged, every tensor stored in f16 or bf16 (`lora merge --dtype`)',
  schemes: Object.keys(ROUNDING_DTYPES),
  controlled: true,
  gated: true,
  modelKey: (scheme, withAdapters) => (withAdapters ? `merged:${scheme}` : `rounded-base:${scheme}`),
  async build(ctx, scheme, withAdapters) {
    const weights = withAdapters ? mergedWeights(ctx.base, ctx.adapters) : ctx.base
    return built(roundedWeights(weights, scheme as RoundingDtype))
  },
}
