/** `base`: the base model without the adapters, its own control (its KL is the adapter's own effect on the text). */
import {VariantKind, built} from './variant-kind.js'

/** The `base` kind: no adapter, its own control. */
export const base: VariantKind = {
  name: 'base',
  description: 'the base without the adapters (its KL is the adapters\' own effect; retained output 0 by construction)',
  schemes: [],
  controlled: true,
  gated: false,
  modelKey: () => 'base',
  build: async (ctx) => built(ctx.base),
}
