/**
 * What a serving strategy is: one entry of the strategy table
 * (`registry.ts`), one file in `strategies/`. An entry says everything the
 * graph builder, the executors, the float64 reference and the benchmark ask
 * about a strategy, so none of them branches on its name:
 * - its routing inputs (graph inputs besides `x`) and how a routing step
 *   fills them (`feeds`);
 * - its graph fragment: the LoRA-delta subgraph of one group of projections
 *   that share an input, `x [rows, in]` → each member's delta `[rows, out]`,
 *   emitted on any `GraphBuilder` (the bench's model stacks, or a decoder);
 * - which float64 reference its outputs equal, and which weights it reads;
 * - or, for a strategy that is not one graph (merged), its own executor.
 *
 * Token rows are request-major: request b owns rows b·T … b·T+T−1.
 */
import type {Dim, ElemType, GraphBuilder} from '../onnx/graph-builder.js'
import type {ExecutionProvider} from '../onnx/session.js'
import type {RoutingStep} from './routing.js'
import type {WeightSet} from './weights/weight-set.js'

/** Which float64 reference a strategy's outputs equal (`reference.ts`): no adapter, the routed stacks, or the shared-B form. */
export type ReferenceKind = 'base' | 'stacks' | 'shared'

/** Weight-set parts a strategy reads besides the base: the routed stacks (A, s·B) or the shared-B form (A', shared B). */
export type WeightPart = 'stacks' | 'shared'

/**
 * How per-request products are laid out. `gemv`: weights stay the left
 * operand (`A[b] @ x[b]ᵀ`), so each product is MLAS's one-column kernel
 * reading the gathered weights in place (decode); `gemm`: the gathered
 * weights are transposed and packed once per request and shared by its T
 * tokens (prefill).
 */
export type MatmulForm = 'gemv' | 'gemm'

/** The form that suits T tokens per request. */
export function defaultForm(tokens: number): MatmulForm {
  return tokens === 1 ? 'gemv' : 'gemm'
}

/** A routing input of a strategy's graphs (besides `x`). */
export interface RoutingInput {
  name: string
  type: 'int64' | 'float32'
  /** Its dims given the slot count S: sizes or symbolic names (`requests`, `rows`). */
  dims(slots: number): Dim[]
}

/** The routing inputs as values of a graph, by input name. */
export type RoutingValues = Readonly<Record<string, string>>

/** The feeds of a strategy's routing inputs for one step, by input name. */
export interface RoutingArrays {
  [name: string]: {data: Float32Array | BigInt64Array; dims: number[]}
}

/** A projection as a fragment sees it (a `ModuleSpec` is one). */
export interface FragmentMember {
  /** Names its B-side stacks (`layoutNames.moduleB`, `moduleBk`) and keys its delta. */
  key: string
  /** Output width. */
  out: number
}

/**
 * Projections that share an input, as a fragment sees them (a `GroupSpec` is
 * one; a single projection is a group of one, see `projection-delta.ts`).
 */
export interface FragmentGroup {
  /** Names the fused A-side stacks (`layoutNames.groupA`, `groupAk`): member j's rows at j·R…. */
  key: string
  /** Input width. */
  in: number
  members: readonly FragmentMember[]
}

/** What a graph fragment is given besides its group and input. */
export interface FragmentContext {
  g: GraphBuilder
  /** Tokens per request T (1 = decode). */
  tokens: number
  form: MatmulForm
  /**
   * Decode only: gather and multiply requests in static chunks of
   * `chunk.size` (of a batch of `chunk.batch`), so that each chunk's gathered
   * weights are still in cache when its product reads them.
   */
  chunk?: {batch: number; size: number}
  /** Slots S (adapters + 1, slot 0 = no adapter). */
  slots: number
  /** Padded rank R of the stacks. */
  rank: number
  /** Width W of the shared-B form (the largest K). */
  sharedK: number
  /** The routing inputs, as declared by `declareRoutingInputs`. */
  routing: RoutingValues
  /**
   * The graph value of a stacked weight, by its layout name (`layoutNames`:
   * `L0.qkv.A [S, G·R, in]`, `L0.q_proj.B [S, out, R]`, `.Ak`, `.Bk`): the
   * caller declares it (external data or inline) on first use.
   */
  weight(name: string): string
  /** The element type of a stacked weight (stacks may be float16). */
  weightType(name: string): ElemType
}

/**
 * A strategy's LoRA-delta subgraph: for the members of `group` (projections
 * sharing the input `x [rows, in]`), each member's delta `[rows, out]`, keyed
 * by module key. A single projection is a group of one.
 */
export type DeltaFragment = (ctx: FragmentContext, group: FragmentGroup, x: string) => Map<string, string>

/** A strategy ready to serve steps. */
export interface Executor {
  /** The strategy's name. */
  readonly strategy: string
  /** Name in timings: the strategy, or a graph variant's name. */
  readonly label: string
  /** Bytes of weights the strategy keeps resident. */
  readonly weightBytes: number
  /** Serve one step: `x [N, hidden]` → `y [N, hidden]`. */
  run(step: RoutingStep, x: Float32Array): Promise<Float32Array>
  /** Route every adapter once (maps every page of the stacks), outside timing. */
  warm(x: Float32Array, batch: number, adapters: number): Promise<void>
  close(): Promise<void>
}

/** How an executor is built: provider, threads, tokens per request, graph-variant overrides. */
export interface ExecutorOptions {
  ep: ExecutionProvider
  threads?: number
  /** Tokens per request T. */
  tokens: number
  /** Product layout override (graph-variant comparisons). */
  form?: MatmulForm
  /** Label override (graph-variant comparisons). */
  label?: string
  /** Requests per step, when fixed: lets decode graphs gather in chunks (`DECODE_CHUNK`). */
  batch?: number
  /** Decode request chunks; default `DECODE_CHUNK` requests when `batch` is given and the strategy gathers in chunks. */
  chunk?: {batch: number; size: number}
  /** Merged copies held at once by a weight-swapping strategy (LRU; default 1). */
  mergedCache?: number
}

/** One entry of the strategy table. */
export interface ServeStrategy<N extends string = string> {
  readonly name: N
  /** How it serves, in a few words (the `lora bench` description lists these). */
  readonly summary: string
  /** Graph inputs besides `x`; the fragment reads them from `ctx.routing`. */
  readonly routingInputs: readonly RoutingInput[]
  /** The routing inputs' values for one step of `tokens` tokens per request over `slots` slots. */
  feeds(step: RoutingStep, tokens: number, slots: number): RoutingArrays
  /** The LoRA-delta subgraph; absent when the strategy adds no delta to the graph (base, merged). */
  readonly fragment?: DeltaFragment
  /** The float64 reference its outputs equal. */
  readonly reference: ReferenceKind
  /** Weight-set parts it reads besides the base weights. */
  readonly weights: readonly WeightPart[]
  /** Decode graphs gather and multiply requests in chunks when the batch is fixed (see `DECODE_CHUNK`). */
  readonly chunkedDecode?: boolean
  /** Working copies it makes of the stacks (`stackCopies` × their bytes), said as `what` when they do not fit and it is left out by default. */
  readonly workingMemory?: {stackCopies: number; what: string}
  /** Its own executor, for a strategy that is not one graph over the weight set; graph strategies leave it out. */
  createExecutor?(set: WeightSet, options: ExecutorOptions): Promise<Executor>
}

/** A table entry, frozen, its name kept as a literal type. */
export function defineStrategy<const N extends string>(strategy: ServeStrategy<N>): ServeStrategy<N> {
  return Object.freeze(strategy)
}

/** Declare `strategy`'s routing inputs on `g` and return their values. */
export function declareRoutingInputs(g: GraphBuilder, strategy: ServeStrategy, slots: number): RoutingValues {
  const values: Record<string, string> = {}
  for (const input of strategy.routingInputs) values[input.name] = g.input(input.name, input.type, input.dims(slots))
  return values
}
