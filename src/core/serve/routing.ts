/**
 * A routing step: which adapter each request of a batch wants (slot 0 = no
 * adapter), optionally a weighted mixture per request. Strategies turn a
 * step into their graphs' routing inputs (`ServeStrategy.feeds`).
 * Token rows are request-major: request b owns rows b·T … b·T+T−1.
 */

/** One step: the slot of every request (0 = no adapter), optionally a weighted mixture per request. */
export interface RoutingStep {
  slots: Int32Array
  /** Per request, (slot, weight) pairs; only the mask strategy serves these. */
  mixtures?: Array<Array<{slot: number; weight: number}>>
}

/** Steps that together route every slot 0…N at least once (warm-up: touch every adapter's pages). */
export function coveringSteps(adapters: number, batch: number): RoutingStep[] {
  const steps: RoutingStep[] = []
  for (let start = 0; start <= adapters; start += batch) {
    const slots = new Int32Array(batch)
    for (let b = 0; b < batch; b++) slots[b] = (start + b) % (adapters + 1)
    steps.push({slots})
  }
  return steps
}
