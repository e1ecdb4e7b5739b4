/**
 * `base`: the base model alone, no adapter. The baseline every other
 * strategy's throughput is divided by; its graph has no routing input and
 * no delta.
 */
import {defineStrategy} from '../strategy.js'

/** The table entry of `base`. */
export const base = defineStrategy({
  name: 'base',
  summary: 'the base model without adapters',
  routingInputs: [],
  feeds: () => ({}),
  reference: 'base',
  weights: [],
})
