/**
 * A variant kind of `lora eval`: how to build a model variant from the base
 * and the adapters, as it would be written and served. One file per kind in
 * this folder, listed in `registry.ts`; nothing else branches on a kind's
 * name.
 *
 * Each kind builds its variant with or without the adapters: built without
 * them, it is the variant's control (the same serving path with no adapter),
 * against which `adapter_retained_output` is measured. Two builds with the
 * same `modelKey` are the same model and are evaluated once.
 */
import type {QuantOptions, QuantSchemeName} from '../../quant/schemes.js'
import type {WeightedAdapter} from '../../runtime/adapter-factors.js'
import type {DecoderWeights} from '../../runtime/decoder-weights.js'
import type {ProjectionDeltas} from '../../runtime/projection-delta.js'
import type {QuantizedWeightStats} from '../variant-weights.js'

/** What every build reads: the open base and the adapters. */
export interface VariantContext {
  /** The base's weights (left open; a build wraps them, never closes them). */
  readonly base: DecoderWeights
  readonly adapters: readonly WeightedAdapter[]
  /** Block size and options of each scheme. */
  readonly quant: (scheme: QuantSchemeName) => QuantOptions
}

/** A built variant, ready for `DecoderModel.create`. */
export interface BuiltVariant {
  readonly weights: DecoderWeights
  /** Adapters applied unmerged, if any. */
  readonly deltas?: ProjectionDeltas
  /** For quantized variants: the weights encoded and kept, filled in as the graph is built. */
  readonly stats?: QuantizedWeightStats
  /** Release what the build opened (not the base). */
  close(): Promise<void>
}

/** One variant kind (`base`, `merged`, `merge-then-quantize`, …). */
export interface VariantKind {
  readonly name: string
  /** One line for help texts and docs. */
  readonly description: string
  /** Accepted schemes after the colon (`merged:f16`), none, or `path` for a kind built from a file (`--variant-file`). */
  readonly schemes: readonly string[] | 'path'
  /** Whether building without the adapters gives the variant's control (false: a file read as stored has none). */
  readonly controlled: boolean
  /** Whether `--max-kld` gates it (`base` is not a candidate for serving: its KL is the adapter's own effect). */
  readonly gated: boolean
  /** The name a variant is reported under, when not `KIND:SCHEME` (a file: `file:<name>`). */
  label?(scheme: string | null): string
  /** Identity of the model built (`scheme` is the path for a file): equal keys, equal models. */
  modelKey(scheme: string | null, withAdapters: boolean): string
  /** Build the variant (with the adapters) or its control (without); `scheme` is the path for a file. */
  build(ctx: VariantContext, scheme: string | null, withAdapters: boolean): Promise<BuiltVariant>
}

/** A build that opened nothing. */
export function built(weights: DecoderWeights, extra: {deltas?: ProjectionDeltas; stats?: QuantizedWeightStats} = {}): BuiltVariant {
  return {weights, ...extra, close: async () => {}}
}
