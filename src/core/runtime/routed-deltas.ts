/**
 * Per-request adapters from a `lora-pack` through the serving strategies of
 * `serve/` (the strategy table): every adapter of the pack is stacked per
 * projection (A `[S, R, in]`, s·B `[S, out, R]`, slot 0 = no adapter) and
 * the strategy's delta fragment routes each request of a batch to its own
 * adapter (`ForwardInput.adapters`: a name from the pack, or null for the
 * base alone). Strategies that read the routed stacks (gather, segment,
 * mask) run here; one graph serves prefill and decode (the fragments' gemm
 * form, which takes any number of tokens per request).
 */
import {InputError, UsageError} from '../errors.js'
import {sanitizeName} from '../formats/safetensors-header.js'
import {loadOrt, OrtTensor} from '../onnx/session.js'
import {PackFile} from '../formats/pack-file.js'
import {emitProjectionDelta} from '../serve/projection-delta.js'
import {STRATEGIES, strategyOf} from '../serve/registry.js'
import {RoutingValues, ServeStrategy, declareRoutingInputs} from '../serve/strategy.js'
import {checkModulesFit} from './adapter-factors.js'
import type {DecoderConfig} from './decoder-config.js'
import type {ProjectionDeltas} from './projection-delta.js'

/** Stacks of one module, float32, scaling folded into B. */
interface ModuleStacks {
  a: Float32Array
  b: Float32Array
  rank: number
  in: number
  out: number
}

/** Whether a strategy of the table can route a plain lora-pack here: it has a delta fragment and reads only the routed stacks. */
export function routesPackStacks(strategy: ServeStrategy): boolean {
  return strategy.fragment !== undefined && strategy.weights.length > 0 && strategy.weights.every((w) => w === 'stacks')
}

/** The strategies `routedDeltas` takes, in table order. */
export function routedStrategies(): string[] {
  return STRATEGIES.filter((name) => routesPackStacks(strategyOf(name)))
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
  const usable = routedStrategies()
  if (!usable.includes(strategyName)) {
    throw new UsageError('RUNTIME_STRATEGY', `strategy "${sanitizeName(strategyName)}" cannot route a lora-pack in the decoder runtime (it takes ${usable.join(', ')})`)
  }
  const strategy = strategyOf(strategyName)
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
  const names = pack.adapters.map((a) => a.name)
  const slotOf = new Map(names.map((n, i) => [n, i + 1]))
  const S = names.length + 1
  let routing: RoutingValues = {}
  return {
    description: `${strategy.name} over ${names.length} adapters of ${packPath}`,
    adapters: names,
    strategy: strategy.name,
    declareInputs(g) {
      routing = declareRoutingInputs(g, strategy, S)
    },
    async delta({g, store}, site) {
      const m = stacks.get(site.module)
      if (!m) return undefined
      return emitProjectionDelta({
        g,
        strategy,
        key: site.module,
        in: m.in,
        out: m.out,
        x: site.input,
        stacks: {A: store.tensor(m.a, [S, m.rank, m.in]), B: store.tensor(m.b, [S, m.out, m.rank])},
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
        if (slot === undefined) throw new UsageError('RUNTIME_NO_SUCH_ADAPTER', `no adapter "${sanitizeName(name)}" in ${packPath} (it holds ${names.length}: ${names.slice(0, 5).join(', ')}${names.length > 5 ? ', …' : ''})`)
        return slot
      })
      const arrays = strategy.feeds({slots}, batch.tokens, S)
      const out: Record<string, OrtTensor> = {}
      for (const [name, {data, dims}] of Object.entries(arrays)) out[name] = data instanceof Float32Array ? new ort.Tensor('float32', data, dims) : new ort.Tensor('int64', data, dims)
      return out
    },
  }
}
