/**
 * Which reference each strategy is held to, and the reference runs a set of
 * strategies needs: `base` (no adapter), `stacks` (each request's adapter,
 * as the routed stacks hold it) and `shared` (its shared-B form, for
 * shared-b when that form is not exact, e.g. a lossy `lora compress`
 * output), every one decoded on one reference model (`RowFactorDeltas`).
 */
import {DecoderModel} from '../runtime/decoder-model.js'
import type {ProgressCallback} from '../progress.js'
import type {E2eAdapterSet, FactorForm} from './adapter-set.js'
import {ReferenceRow, ReferenceTokens, runReference} from './reference-run.js'
import type {E2eRequest} from './requests.js'
import {RowFactorDeltas} from './row-factor-deltas.js'
import type {E2eBuildContext, E2eStrategy} from './strategies.js'

/** A reference: the base alone, or with each request's adapter in one of its forms. */
export type ReferenceForm = 'base' | FactorForm

/** The reference `strategy`'s tokens must equal with `adapters` (an exact shared-B form is held to the routed stacks' reference). */
export function referenceForm(strategy: Pick<E2eStrategy, 'reference'>, adapters: Pick<E2eAdapterSet, 'sharedExact'>): ReferenceForm {
  return strategy.reference === 'shared' && adapters.sharedExact ? 'stacks' : strategy.reference
}

/** What `referenceTokens` decodes. */
export interface ReferenceTokensOptions {
  readonly ctx: Pick<E2eBuildContext, 'weights' | 'adapters' | 'ep' | 'threads' | 'maxPositions' | 'mergedCache' | 'externalData'>
  readonly requests: readonly E2eRequest[]
  readonly forms: ReadonlySet<ReferenceForm>
  /** Rows per static batch. */
  readonly maxBatch: number
  readonly onProgress?: ProgressCallback
}

/**
 * Decode every request under every form asked for.
 * @returns form → request id → its tokens
 */
export async function referenceTokens(o: ReferenceTokensOptions): Promise<Map<ReferenceForm, Map<string, ReferenceTokens>>> {
  const {adapters} = o.ctx
  const forms = [...o.forms]
  const rank = Math.max(1, ...forms.map((f) => (f === 'stacks' ? adapters.rank : f === 'shared' ? (adapters.sharedK ?? 0) : 0)))
  const deltas = new RowFactorDeltas(adapters.modules, rank)
  const rows: ReferenceRow[] = forms.flatMap((form) =>
    o.requests.map((request) => ({
      request,
      key: `${form}:${request.adapter}`,
      factors: async () => (form === 'base' || request.adapter === null ? null : adapters.factors(request.adapter, form)),
    })),
  )
  const model = await DecoderModel.create({weights: o.ctx.weights, deltas, ep: o.ctx.ep, threads: o.ctx.threads, maxPositions: o.ctx.maxPositions, externalData: o.ctx.externalData})
  try {
    const tokens = await runReference(model, deltas, rows, o.maxBatch, (done) => o.onProgress?.({stage: 'reference', done, total: rows.length}))
    const out = new Map<ReferenceForm, Map<string, ReferenceTokens>>(forms.map((f) => [f, new Map()]))
    rows.forEach((row, i) => out.get(row.key.slice(0, row.key.indexOf(':')) as ReferenceForm)!.set(row.request.id, tokens[i]!))
    return out
  } finally {
    await model.release()
  }
}
