/**
 * How each serving strategy runs end to end, as a table keyed by name (the
 * serve table's strategies, in its order, then peers): which engine serves
 * it, how the scheduler batches its requests, and which reference its
 * tokens must equal.
 * - `base`: the decoder alone (requests' adapters ignored);
 * - every strategy of the serve table with a delta fragment (gather,
 *   segment, shared-b, mask, and any added later): the decoder with the
 *   adapters routed per request through that fragment (`routedDeltasFrom`);
 * - `merged`: weight swapping over merged copies (`merged-engine.ts`);
 * - peers, other engines on the same model and adapters, run only when
 *   named: `llama.cpp` (requests grouped per adapter, as llama.cpp has to)
 *   and its base alone, `llama.cpp-base` (`llama-cpp-peer.ts`).
 */
import type {ExecutionProvider} from '../onnx/session.js'
import type {DecoderConfig} from '../runtime/decoder-config.js'
import type {DecoderWeights} from '../runtime/decoder-weights.js'
import {DecoderModel} from '../runtime/decoder-model.js'
import {routedDeltasFrom, routesSource} from '../runtime/routed-deltas.js'
import {STRATEGY_TABLE} from '../serve/registry.js'
import type {ReferenceKind, ServeStrategy} from '../serve/strategy.js'
import type {E2eAdapterSet} from './adapter-set.js'
import type {BaseDtype} from './base-dtype.js'
import {buildLlamaCppPeer, llamaCppUnavailable} from './llama-cpp-peer.js'
import {llamaCppTieTolerance} from './llama-cpp-tolerance.js'
import type {E2eRequest} from './requests.js'
import type {BatchEngine} from './batch-engine.js'
import {DecoderEngine} from './decoder-engine.js'
import {MergedEngine} from './merged-engine.js'
import type {BatchPolicy} from './scheduler.js'

/** What a strategy is built from. */
export interface E2eBuildContext {
  /** The base weights (as `--base-dtype` stores them). */
  readonly weights: DecoderWeights
  readonly adapters: E2eAdapterSet
  readonly ep: ExecutionProvider
  readonly threads: number
  readonly maxPositions: number
  /** Merged copies held by `merged`. */
  readonly mergedCache: number
  readonly externalData: boolean
  /** The base as read (float32, before `--base-dtype`): peers write their own files from it. */
  readonly sourceWeights: DecoderWeights
  readonly baseDtype: BaseDtype
  /** `--model`, or undefined for a synthetic base. */
  readonly model?: string
  /** The requests of the run (peers load the adapters they ask for). */
  readonly requests: readonly E2eRequest[]
  readonly maxBatch: number
  /** A folder whose node_modules holds a peer engine's package, tried first. */
  readonly engineDir?: string
  /** A line for the report's notes. */
  readonly note?: (line: string) => void
}

/** What a run is, for `E2eStrategy.unavailable`. */
export interface E2eRunFacts {
  readonly config: DecoderConfig
  readonly model?: string
  readonly engineDir?: string
}

/** A strategy ready to serve. */
export interface BuiltStrategy {
  readonly engine: BatchEngine<unknown>
  /** Bytes of adapter weights it holds by construction (stacks, merged copies). */
  readonly adapterBytes: number
  /** Counters worth reporting (merges, swaps), if any. */
  stats?(): Record<string, number>
  close(): Promise<void>
}

/** One row of the end-to-end table. */
export interface E2eStrategy {
  readonly name: string
  readonly summary: string
  readonly policy: BatchPolicy
  /** The reference its tokens must equal: no adapter, the routed stacks' adapters, or their shared-B form. */
  readonly reference: ReferenceKind
  /** Working copies of the stacks it makes (times their bytes), for the memory check. */
  readonly stackCopies: number
  /** A peer engine (not the decoder runtime): runs only when named in `--strategies`. */
  readonly peer?: boolean
  /** Rows that run whenever this one runs (a peer's base alone). */
  readonly alongside?: readonly string[]
  /** The near-tie tolerance its tokens are checked with, when its arithmetic is coarser than float32 (a peer's). */
  tieTolerance?(baseDtype: BaseDtype, runTolerance: number): number
  /** Why it cannot serve `adapters` in this run, or undefined when it can. */
  unavailable(adapters: E2eAdapterSet, run: E2eRunFacts): string | undefined
  build(ctx: E2eBuildContext): Promise<BuiltStrategy>
}

const base: E2eStrategy = {
  name: 'base',
  summary: 'the base model alone (adapters ignored)',
  policy: 'mixed',
  reference: 'base',
  stackCopies: 0,
  unavailable: () => undefined,
  async build(ctx) {
    const model = await DecoderModel.create({weights: ctx.weights, ep: ctx.ep, threads: ctx.threads, maxPositions: ctx.maxPositions, externalData: ctx.externalData})
    return {engine: new DecoderEngine(model, false), adapterBytes: 0, close: () => model.release()}
  },
}

/** A strategy of the serve table routed per request by its delta fragment. */
function routed(s: ServeStrategy): E2eStrategy {
  const form = s.weights.includes('shared') ? 'shared' : 'stacks'
  return {
    name: s.name,
    summary: s.summary,
    policy: 'mixed',
    reference: s.reference,
    stackCopies: 1 + (s.workingMemory?.stackCopies ?? 0),
    unavailable: (adapters) => (routesSource(s, adapters) ? undefined : `${s.name} serves a shared-B form, which these adapters lack (give --shared-b with --pack: the pack's lora compress output)`),
    async build(ctx) {
      const deltas = routedDeltasFrom(ctx.adapters, s.name)
      const model = await DecoderModel.create({weights: ctx.weights, deltas, ep: ctx.ep, threads: ctx.threads, maxPositions: ctx.maxPositions, externalData: ctx.externalData})
      return {engine: new DecoderEngine(model, true), adapterBytes: ctx.adapters.bytes(form), close: () => model.release()}
    },
  }
}

const merged: E2eStrategy = {
  name: 'merged',
  summary: 'merged weights swapped per adapter, LRU of --merged-cache copies, one adapter at a time',
  policy: 'per-adapter',
  reference: 'stacks',
  stackCopies: 0,
  unavailable: () => undefined,
  async build(ctx) {
    const engine = await MergedEngine.create({weights: ctx.weights, adapters: ctx.adapters, capacity: ctx.mergedCache, ep: ctx.ep, threads: ctx.threads, maxPositions: ctx.maxPositions, externalData: ctx.externalData})
    return {engine, adapterBytes: engine.copyBytes * ctx.mergedCache, stats: () => ({...engine.stats}), close: () => engine.close()}
  },
}

const llamaCpp: E2eStrategy = {
  name: 'llama.cpp',
  summary: 'llama.cpp (node-llama-cpp): the model as a GGUF, each adapter a GGUF LoRA by lora export, one adapter per batch (llama-server slots)',
  policy: 'per-adapter',
  reference: 'stacks',
  stackCopies: 0,
  peer: true,
  alongside: ['llama.cpp-base'],
  tieTolerance: llamaCppTieTolerance,
  unavailable: (_adapters, run) => llamaCppUnavailable(run),
  build: (ctx) => buildLlamaCppPeer(ctx, {adapters: true}),
}

const llamaCppBase: E2eStrategy = {
  name: 'llama.cpp-base',
  summary: 'llama.cpp alone: the same GGUF without adapters, every request in one batch (the engine gap against base)',
  policy: 'mixed',
  reference: 'base',
  stackCopies: 0,
  peer: true,
  tieTolerance: llamaCppTieTolerance,
  unavailable: (_adapters, run) => llamaCppUnavailable(run),
  build: (ctx) => buildLlamaCppPeer(ctx, {adapters: false}),
}

/** Peer engines, after the serve table's strategies. */
const PEERS: readonly E2eStrategy[] = [llamaCpp, llamaCppBase]

/** Strategies with an engine of their own; the others of the serve table are routed. */
const OWN: Readonly<Record<string, E2eStrategy>> = {base, merged}

/** Every end-to-end strategy, in table order. */
export const E2E_STRATEGY_TABLE: readonly E2eStrategy[] = Object.freeze(
  STRATEGY_TABLE.flatMap((s) => {
    const own = OWN[s.name]
    if (own) return [own]
    return s.fragment ? [routed(s)] : []
  }).concat(PEERS),
)

/** Every end-to-end strategy's name, in table order. */
export const E2E_STRATEGIES: readonly string[] = Object.freeze(E2E_STRATEGY_TABLE.map((s) => s.name))

/** The strategies a run without `--strategies` tries (every one but the peers), in table order. */
export const E2E_DEFAULT_STRATEGIES: readonly string[] = Object.freeze(E2E_STRATEGY_TABLE.filter((s) => !s.peer).map((s) => s.name))

const BY_NAME: ReadonlyMap<string, E2eStrategy> = new Map(E2E_STRATEGY_TABLE.map((s) => [s.name, s]))

/** Whether `name` is an end-to-end strategy. */
export function isE2eStrategy(name: string): boolean {
  return BY_NAME.has(name)
}

/**
 * The row of `name`.
 * @throws Error for a name not in the table (names from users are checked with `isE2eStrategy` first)
 */
export function e2eStrategy(name: string): E2eStrategy {
  const s = BY_NAME.get(name)
  if (!s) throw new Error(`unknown end-to-end strategy "${name}" (the table has ${E2E_STRATEGIES.join(', ')})`)
  return s
}
