/**
 * `merged`: one merged model per adapter, requests grouped by adapter and
 * run one group after another (weight swapping), at most `mergedCache`
 * merged copies held (LRU). Not one graph over the stacks: it has its own
 * executor (`merged-executor.ts`) and no routing input or delta fragment.
 */
import {MergedExecutor} from '../merged-executor.js'
import {defineStrategy} from '../strategy.js'

/** The table entry of `merged`. */
export const merged = defineStrategy({
  name: 'merged',
  summary: 'one merged model per adapter, LRU of --merged-cache copies',
  routingInputs: [],
  feeds: () => ({}),
  reference: 'stacks',
  weights: ['stacks'],
  createExecutor: (set, options) => MergedExecutor.create(set, options.mergedCache ?? 1, options),
})
