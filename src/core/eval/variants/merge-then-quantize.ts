/** `merge-then-quantize:S`: the adapters merged, then the model quantized (`lora merge --quantize S`): D(Q(W + ΔW)). */
import {QUANT_SCHEME_NAMES, QuantSchemeName} from '../../quant/schemes.js'
import {mergedWeights} from '../../runtime/lora-deltas.js'
import {emptyQuantStats, quantizedWeights} from '../variant-weights.js'
import {VariantKind, built} from './variant-kind.js'

/** The `merge-then-quantize:S` kind. */
export const mergeThenQuantize: VariantKind = {
  name: 'merge-then-quantize',
  description: 'adapters merged, then quantized (`lora merge --quantize`): D(Q(W + ΔW))',
  schemes: QUANT_SCHEME_NAMES,
  controlled: true,
  gated: true,
  modelKey: (scheme, withAdapters) => (withAdapters ? `merge-then-quantize:${scheme}` : `quantized-base:${scheme}`),
  async build(ctx, scheme, withAdapters) {
    const stats = emptyQuantStats()
    const weights = withAdapters ? mergedWeights(ctx.base, ctx.adapters) : ctx.base
    return built(quantizedWeights(weights, ctx.quant(scheme as QuantSchemeName), stats), {stats})
  },
}
