/** `quantized-base-unmerged:S`: a 4-bit base serving the adapters unmerged beside it, QLoRA style: D(Q(W)) x + B A x. */
import {QUANT_SCHEME_NAMES, QuantSchemeName} from '../../quant/schemes.js'
import {loraDeltas} from '../../runtime/lora-deltas.js'
import {emptyQuantStats, quantizedWeights} from '../variant-weights.js'
import {VariantKind, built} from './variant-kind.js'

/** The `quantized-base-unmerged:S` kind. */
export const quantizedBaseUnmerged: VariantKind = {
  name: 'quantized-base-unmerged',
  description: 'quantized base, adapters applied unmerged as stored (QLoRA style): D(Q(W)) + ΔW',
  schemes: QUANT_SCHEME_NAMES,
  controlled: true,
  gated: true,
  modelKey: (scheme, withAdapters) => (withAdapters ? `quantized-base-unmerged:${scheme}` : `quantized-base:${scheme}`),
  async build(ctx, scheme, withAdapters) {
    const stats = emptyQuantStats()
    const weights = quantizedWeights(ctx.base, ctx.quant(scheme as QuantSchemeName), stats)
    return built(weights, {stats, deltas: withAdapters ? loraDeltas(ctx.adapters) : undefined})
  },
}
