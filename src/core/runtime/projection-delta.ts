/**
 * The hook through which adapters enter the decoder graph unmerged: for each
 * projection (q, k, v, o, gate, up, down of every block) the graph builder
 * asks the provider for a delta `[N, out]` computed from the projection's
 * input `x [N, in]` (N = batch · tokens rows, request-major) and adds it to
 * the base product. Plain LoRA (`lora-deltas.ts`) needs no inputs besides x;
 * per-request (routed) providers declare routing inputs and feed them for
 * each batch.
 */
import type {GraphBuilder} from '../onnx/graph-builder.js'
import type {OrtTensor} from '../onnx/session.js'
import type {Projection} from '../models/llama.js'
import type {InitializerStore} from './initializer-store.js'

/** One projection of the decoder, as the graph builder meets it. */
export interface ProjectionSite {
  readonly layer: number
  readonly projection: Projection
  /** Module path, `model.layers.0.self_attn.q_proj`. */
  readonly module: string
  readonly in: number
  readonly out: number
  /** The graph value holding the input `[N, in]` (q/k/v share one, gate/up share one). */
  readonly input: string
}

/** What a provider may add to the graph. */
export interface DeltaContext {
  readonly g: GraphBuilder
  /** Adds weight initializers (inline or external data, as the model's). */
  readonly store: InitializerStore
}

/** The rows of one forward call, for routing feeds. */
export interface RoutingBatch {
  /** Requests (graph batch rows). */
  readonly rows: number
  /** Tokens per request in this call (padded). */
  readonly tokens: number
  /** Per request: the adapter it asked for (a provider-defined id), or null for none. */
  readonly adapters: readonly (string | null)[]
}

/** A provider of adapter deltas beside the base products (plain LoRA, or routed per request). */
export interface ProjectionDeltas {
  /** A short description for reports (`lora ×2`, `routed gather`). */
  readonly description: string
  /** Declare routing inputs before any node is added. */
  declareInputs?(g: GraphBuilder): void
  /** Add the nodes computing the delta `[N, out]` of `site`, or return undefined when it has none. */
  delta(ctx: DeltaContext, site: ProjectionSite): Promise<string | undefined>
  /**
   * The projection's weight as a graph value `[in, out]` (declared in
   * `declareInputs`, fed per call) in place of the base weight, or undefined
   * to keep the base weight: weight swapping, as the end-to-end benchmark's
   * merged strategy feeds merged copies.
   */
  weight?(ctx: DeltaContext, site: ProjectionSite): string | undefined
  /** Feeds of the declared inputs for one forward call. */
  feeds?(batch: RoutingBatch): Promise<Record<string, OrtTensor>>
}
