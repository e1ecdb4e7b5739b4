/**
 * `requantize:S`: the adapters merged into an already-quantized base, the
 * merged weights quantized again (`lora merge --from-quantized`):
 * D(Q(D(Q(W)) + ΔW)). Weights no adapter touches stay as first quantized
 * (merge copies them as stored), so without adapters this is the quantized
 * base.
 */
import {QUANT_SCHEME_NAMES, QuantSchemeName} from '../../quant/schemes.js'
import {mergedWeights} from '../../runtime/lora-deltas.js'
import {emptyQuantStats, isQuantizedByDefault, quantizedWeights} from '../variant-weights.js'
import {VariantKind, built} from './variant-kind.js'

/** The `requantize:S` kind. */
export const requantize: VariantKind = {
  name: 'requantize',
  description: 'adapters merged into a quantized base, re-quantized (`lora merge --from-quantized`): D(Q(D(Q(W)) + ΔW))',
  schemes: QUANT_SCHEME_NAMES,
  controlled: true,
  gated: true,
  modelKey: (scheme, withAdapters) => (withAdapters ? `requantize:${scheme}` : `quantized-base:${scheme}`),
  async build(ctx, scheme, withAdapters) {
    const quant = ctx.quant(scheme as QuantSchemeName)
    const stats = emptyQuantStats()
    const quantized = quantizedWeights(ctx.base, quant, stats)
    if (!withAdapters) return built(quantized, {stats})
    const adapted = new Set<string>()
    for (const {adapter} of ctx.adapters) for (const module of adapter.modules.keys()) adapted.add(`${module}.weight`)
    // the adapted weights come back from the merge in float; encode them again (the others stay as first encoded)
    return built(quantizedWeights(mergedWeights(quantized, ctx.adapters), quant, undefined, (name, w) => adapted.has(name) && isQuantizedByDefault(name, w)), {stats})
  },
}
