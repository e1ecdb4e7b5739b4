/**
 * Per-request adapters through the serving strategies of `serve/` (the
 * strategy table): every adapter of a source is stacked per projection
 * (A `[S, R, in]`, s·B `[S, out, R]`, slot 0 = no adapter; or the shared-B
 * form A′ `[S, K, in]`, Uᵀ `[K, out]`) and the strategy's delta fragment
 * routes each request of a batch to its own adapter
 * (`ForwardInput.adapters`: a name from the source, or null for the base
 * alone). Strategies whose weights the source has run here: gather,
 * segment and mask read the routed stacks (every source has them), shared-b
 * the shared-B form (a source that has one). One graph serves prefill and
 * decode (the fragments' gemm form, which takes any number of tokens per
 * request).
 *
 * A source (`RoutedStackSource`) hands out one module's stacks at a time
 * while the graph is built: a `lora-pack` read into memory
 * (`packStackSource`), or any other (the end-to-end benchmark's synthetic
 * adapters generate theirs on demand).
 */
import {InputError, UsageError} from '../errors.js'
import {sanitizeName} from '../formats/safetensors-header.js'
import {loadOrt, OrtTensor} from '../onnx/session.js'
import {PackFile} from '../formats/pack-file.js'
import {ProjectionStacks, emitProjectionDelta} from '../serve/projection-delta.js'
import {STRATEGIES, strategyOf} from '../serve/registry.js'
import {RoutingValues, ServeStrategy, declareRoutingInputs} from '../serve/strategy.js'
import {checkModulesFit} from './adapter-factors.js'
import type {DecoderConfig} from './decoder-config.js'
import type {InitializerStore} from './initializer-store.js'
import type {ProjectionDeltas} from './projection-delta.js'

/** One module's routed stacks, float32: A `[S, R, in]`, s·B `[S, out, R]` (scaling folded in, slot 0 all zeros). */
export interface ModuleStacks {
  readonly a: Float32Array
  readonly b: Float32Array
  readonly rank: number
  readonly in: number
  readonly out: number
}

/** One module's shared-B form, float32: A′ `[S, K, in]` (scaling folded in, slot 0 all zeros) and the shared basis transposed, Uᵀ `[K, out]`. */
export interface SharedModuleStacks {
  readonly ak: Float32Array
  readonly bk: Float32Array
  readonly k: number
  readonly in: number
  readonly out: number
}

/** Where routed adapters come from: their names in slot order, and each module's stacks, asked for while the graph is built. */
export interface RoutedStackSource {
  /** Adapter names; adapter i is slot i + 1. */
  readonly adapters: readonly string[]
  /** Where they come from, in words (messages, descriptions). */
  readonly source: string
  /** A module's routed stacks, or undefined when no adapter adapts it. */
  stacks(module: string): Promise<ModuleStacks | undefined>
  /** A module's shared-B form (absent when the source has none), or undefined when no adapter adapts it. */
  shared?(module: string): Promise<SharedModuleStacks | undefined>
}

/** Whether a strategy of the table can route `source` here: it has a delta fragment and reads only weights the source has. */
export function routesSource(strategy: ServeStrategy, source: {shared?: unknown}): boolean {
  return strategy.fragment !== undefined && strategy.weights.length > 0 && strategy.weights.every((w) => w === 'stacks' || (w === 'shared' && source.shared !== undefined))
}

/** Whether a strategy of the table can route a plain lora-pack here (it reads only the routed stacks). */
export function routesPackStacks(strategy: ServeStrategy): boolean {
  return routesSource(strategy, {})
}

/** The strategies a source routes, in table order: a plain pack's by default, with `shared: true` those of a source with a shared-B form too. */
export function routedStrategies(options: {shared?: boolean} = {}): string[] {
  const source = options.shared ? {shared: true} : {}
  return STRATEGIES.filter((name) => routesSource(strategyOf(name), source))
}

/** A routed provider and the adapters it serves. */
export interface RoutedDeltas extends ProjectionDeltas {
  /** Adapter names in slot order (slot i + 1). */
  readonly adapters: readonly string[]
  readonly strategy: string
}

/**
 * Read every adapter of `packPath` and serve them per request with `strategyName`.
 * @throws UsageError for a strategy that cannot route a pack here; InputError for a pack whose modules do not fit the decoder
 */
export async function routedDeltas(packPath: string, strategyName: string, config: DecoderConfig): Promise<RoutedDeltas> {
  checkRoutes(strategyName, {}, `a lora-pack`)
  return routedDeltasFrom(await packStackSource(packPath, config), strategyName)
}

function checkRoutes(strategyName: string, source: {shared?: unknown}, what: string): ServeStrategy {
  const usable = routedStrategies({shared: source.shared !== undefined})
  if (!usable.includes(strategyName)) {
    const hint = source.shared === undefined && routedStrategies({shared: true}).includes(strategyName) ? '; it serves a shared-B form, which this source lacks' : ''
    throw new UsageError('RUNTIME_STRATEGY', `strategy "${sanitizeName(strategyName)}" cannot route ${what} in the decoder runtime (it takes ${usable.join(', ')})${hint}`)
  }
  return strategyOf(strategyName)
}

/**
 * Serve the adapters of `source` per request with `strategyName`.
 * @throws UsageError for a strategy that cannot route the source (shared-b needs its `shared` form)
 */
export function routedDeltasFrom(source: RoutedStackSource, strategyName: string): RoutedDeltas {
  const strategy = checkRoutes(strategyName, source, source.source)
  const names = source.adapters
  const slotOf = new Map(names.map((n, i) => [n, i + 1]))
  const S = names.length + 1
  const readsShared = strategy.weights.includes('shared')
  let routing: RoutingValues = {}
  return {
    description: `${strategy.name} over ${names.length} adapters of ${source.source}`,
    adapters: names,
    strategy: strategy.name,
    declareInputs(g) {
      routing = declareRoutingInputs(g, strategy, S)
    },
    async delta({g, store}, site) {
      const stacks = readsShared ? sharedTensors(await source.shared!(site.module), store, S) : routedTensors(await source.stacks(site.module), store, S)
      if (!stacks) return undefined
      return emitProjectionDelta({
        g,
        strategy,
        key: site.module,
        in: site.in,
        out: site.out,
        x: site.input,
        stacks,
        routing,
        tokens: 0, // any number per request: the gemm form reshapes by the routing input's batch
        form: 'gemm',
      })
    },
    async feeds(batch) {
      const ort = await loadOrt()
      const slots = Int32Array.from(batch.adapters, (name) => {
        if (name === null) return 0
        const slot = slotOf.get(name)
        if (slot === undefined) throw new UsageError('RUNTIME_NO_SUCH_ADAPTER', `no adapter "${sanitizeName(name)}" in ${source.source} (it holds ${names.length}: ${names.slice(0, 5).join(', ')}${names.length > 5 ? ', …' : ''})`)
        return slot
      })
      const arrays = strategy.feeds({slots}, batch.tokens, S)
      const out: Record<string, OrtTensor> = {}
      for (const [name, {data, dims}] of Object.entries(arrays)) out[name] = data instanceof Float32Array ? new ort.Tensor('float32', data, dims) : new ort.Tensor('int64', data, dims)
      return out
    },
  }
}

function routedTensors(m: ModuleStacks | undefined, store: InitializerStore, slots: number): ProjectionStacks | undefined {
  return m && {A: store.tensor(m.a, [slots, m.rank, m.in]), B: store.tensor(m.b, [slots, m.out, m.rank])}
}

function sharedTensors(m: SharedModuleStacks | undefined, store: InitializerStore, slots: number): ProjectionStacks | undefined {
  return m && {Ak: store.tensor(m.ak, [slots, m.k, m.in]), Bk: store.tensor(m.bk, [m.k, m.out])}
}

/**
 * Every adapter of a `lora-pack`, stacked per module in memory (float32,
 * scaling folded into B, slot 0 zeros), checked against the decoder.
 * @throws InputError for a pack whose modules do not fit the decoder or are not nn.Linear LoRA
 */
export async function packStackSource(packPath: string, config: DecoderConfig): Promise<RoutedStackSource> {
  const pack = await PackFile.open(packPath)
  const stacks = new Map<string, ModuleStacks>()
  try {
    checkModulesFit(packPath, pack.modules.values(), config)
    await pack.checkNullSlot()
    for (const m of pack.modules.values()) {
      if (m.kind !== 'linear' || m.fan_in_fan_out) throw new InputError('ADAPTER_UNSUPPORTED_LAYER', `read ${packPath}: module "${sanitizeName(m.name)}" is not an nn.Linear LoRA`)
      const a = Float32Array.from((await pack.readStack(m.name, 'A')).toFloat32())
      const b = Float32Array.from((await pack.readStack(m.name, 'B')).toFloat32())
      const perSlot = m.out * m.R
      for (let slot = 1; slot < pack.slots; slot++) {
        const s = pack.slotModule(m.name, slot)?.scaling ?? 0
        for (let i = slot * perSlot; i < (slot + 1) * perSlot; i++) b[i] = b[i]! * s
      }
      b.fill(0, 0, perSlot) // slot 0: no adapter
      stacks.set(m.name, {a, b, rank: m.R, in: m.in, out: m.out})
    }
  } finally {
    await pack.close()
  }
  return {
    adapters: pack.adapters.map((a) => a.name),
    source: packPath,
    stacks: async (module) => stacks.get(module),
  }
}
