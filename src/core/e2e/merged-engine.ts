/**
 * The `merged` strategy end to end: weight swapping, the naive alternative
 * to routing. The decoder graph takes the adapted projections' weights as
 * inputs (`ProjectionDeltas.weight`); serving an adapter's rows feeds its
 * merged weights `Wᵀ + Aᵀ·(s·B)ᵀ`, merged on demand (onnxruntime Gemm) and
 * held in an LRU of C merged copies; requests of other adapters wait (the
 * scheduler's `per-adapter` policy), and a call whose rows ask for several
 * adapters runs one group after another. Merges and swaps are part of the
 * call they serve, so the clock counts them.
 */
import {transposeTyped} from '../linalg/dense.js'
import {MatMulEngine} from '../linalg/matmul-engine.js'
import type {GraphBuilder} from '../onnx/graph-builder.js'
import type {ExecutionProvider, OrtTensor} from '../onnx/session.js'
import {loadOrt} from '../onnx/session.js'
import {DecoderModel} from '../runtime/decoder-model.js'
import type {DecoderWeights} from '../runtime/decoder-weights.js'
import {argmax} from '../runtime/generate.js'
import {KvCache} from '../runtime/kv-cache.js'
import {linearValues} from '../runtime/linear-weight.js'
import type {DeltaContext, ProjectionDeltas, ProjectionSite} from '../runtime/projection-delta.js'
import type {AdaptedModule, E2eAdapterSet} from './adapter-set.js'
import type {EngineRow, EngineStep} from './batch-engine.js'
import {KvCacheEngine, capacityFor} from './decoder-engine.js'

/** What the merged engine did: merges run, LRU hits, weight swaps. */
export interface MergedStats {
  merges: number
  hits: number
  swaps: number
}

/** How to build a merged engine. */
export interface MergedEngineOptions {
  readonly weights: DecoderWeights
  readonly adapters: E2eAdapterSet
  /** Merged copies held at once (LRU), at least 1. */
  readonly capacity: number
  readonly ep?: ExecutionProvider
  readonly threads?: number
  readonly maxPositions?: number
  readonly externalData?: boolean
}

type WeightFeeds = Record<string, OrtTensor>

/** The adapted projections' weights as graph inputs `W:<module>` `[in, out]`, fed per call. */
class SwappedWeights implements ProjectionDeltas {
  readonly description = 'adapted weights swapped per adapter (merged)'
  current: WeightFeeds = {}
  private readonly names: ReadonlySet<string>

  constructor(private readonly modules: readonly AdaptedModule[]) {
    this.names = new Set(modules.map((m) => m.name))
  }

  declareInputs(g: GraphBuilder): void {
    for (const m of this.modules) g.input(inputName(m.name), 'float32', [m.in, m.out])
  }

  weight(_ctx: DeltaContext, site: ProjectionSite): string | undefined {
    return this.names.has(site.module) ? inputName(site.module) : undefined
  }

  async delta(): Promise<undefined> {
    return undefined
  }

  async feeds(): Promise<WeightFeeds> {
    return this.current
  }
}

function inputName(module: string): string {
  return `W:${module}`
}

/** Weight swapping over merged copies (see the module comment). */
export class MergedEngine extends KvCacheEngine {
  readonly stats: MergedStats = {merges: 0, hits: 0, swaps: 0}
  /** LRU: insertion order is recency. */
  private readonly cache = new Map<string, WeightFeeds>()
  private last: string | null | undefined

  private constructor(
    private readonly model: DecoderModel,
    private readonly swapped: SwappedWeights,
    private readonly o: MergedEngineOptions,
    /** Wᵀ `[in, out]` of each adapted module. */
    private readonly baseT: ReadonlyMap<string, Float32Array>,
    private readonly baseFeeds: WeightFeeds,
    private readonly gemm: MatMulEngine,
  ) {
    super()
  }

  /** Read the adapted weights, build the graph and its session. */
  static async create(o: MergedEngineOptions): Promise<MergedEngine> {
    const ort = await loadOrt()
    const baseT = new Map<string, Float32Array>()
    const baseFeeds: WeightFeeds = {}
    for (const m of o.adapters.modules) {
      const w = await o.weights.linear(`${m.name}.weight`)
      const t = transposeTyped(linearValues(w), w.out, w.in)
      baseT.set(m.name, t)
      baseFeeds[inputName(m.name)] = new ort.Tensor('float32', t, [m.in, m.out])
    }
    const swapped = new SwappedWeights(o.adapters.modules)
    const model = await DecoderModel.create({weights: o.weights, deltas: swapped, ep: o.ep, threads: o.threads, maxPositions: o.maxPositions, externalData: o.externalData})
    return new MergedEngine(model, swapped, o, baseT, baseFeeds, new MatMulEngine(o.threads))
  }

  /** Bytes of one merged copy of the adapted weights. */
  get copyBytes(): number {
    return this.o.adapters.modules.reduce((s, m) => s + 4 * m.in * m.out, 0)
  }

  override async prefill(rows: readonly EngineRow[]): Promise<EngineStep<KvCache>> {
    return this.grouped(rows, undefined)
  }

  override decode(cache: KvCache, rows: readonly EngineRow[]): Promise<EngineStep<KvCache>> {
    return this.grouped(rows, cache)
  }

  async close(): Promise<void> {
    this.cache.clear()
    await this.model.release()
    await this.gemm.release()
  }

  /** Rows grouped by adapter, each group on its merged weights, results back in row order. */
  private async grouped(rows: readonly EngineRow[], cache: KvCache | undefined): Promise<EngineStep<KvCache>> {
    const groups = new Map<string | null, number[]>()
    rows.forEach((r, i) => groups.set(r.adapter, [...(groups.get(r.adapter) ?? []), i]))
    const next = new Array<number>(rows.length)
    const caches: KvCache[] = []
    const order: number[] = []
    for (const [adapter, members] of groups) {
      await this.use(adapter)
      const whole = groups.size === 1
      const tokens = members.map((i) => rows[i]!.tokens)
      const past = cache ? (whole ? cache : cache.take(members, cache.inPlace ? cache.capacity : undefined)) : this.model.emptyCache(members.length, capacityFor(members.map((i) => rows[i]!)))
      const out = await this.model.forward({tokens, cache: past})
      members.forEach((i, k) => (next[i] = argmax(out.logits[k]!)))
      caches.push(out.cache)
      order.push(...members)
    }
    if (caches.length === 1) return {next, cache: caches[0]!}
    const joined = KvCache.concat(caches)
    const at = new Array<number>(rows.length)
    order.forEach((row, k) => (at[row] = k))
    return {next, cache: joined.take(at, Math.max(...caches.map((c) => c.capacity)))}
  }

  /** Feed `adapter`'s merged weights: from the LRU, or merged now (evicting the least recently used). */
  private async use(adapter: string | null): Promise<void> {
    if (adapter !== this.last) this.stats.swaps++
    this.last = adapter
    if (adapter === null) {
      this.swapped.current = this.baseFeeds
      return
    }
    const hit = this.cache.get(adapter)
    if (hit) {
      this.cache.delete(adapter)
      this.cache.set(adapter, hit)
      this.stats.hits++
      this.swapped.current = hit
      return
    }
    const merged = await this.merge(adapter)
    this.stats.merges++
    if (this.cache.size >= this.o.capacity) this.cache.delete(this.cache.keys().next().value!)
    this.cache.set(adapter, merged)
    this.swapped.current = merged
  }

  private async merge(adapter: string): Promise<WeightFeeds> {
    const ort = await loadOrt()
    const factors = await this.o.adapters.factors(adapter, 'stacks')
    const feeds: WeightFeeds = {}
    for (const m of this.o.adapters.modules) {
      const f = factors.modules.get(m.name)
      const base = this.baseT.get(m.name)!
      if (!f) {
        feeds[inputName(m.name)] = this.baseFeeds[inputName(m.name)]!
        continue
      }
      const sb = f.scaling === 1 ? f.b : f.b.map((v) => v * f.scaling)
      // Wᵀ + Aᵀ·(s·B)ᵀ: A [r, in] read transposed, s·B [out, r] read transposed
      const w = await this.gemm.gemm(f.a, [f.r, m.in], sb, [m.out, f.r], base, {transA: true, transB: true})
      feeds[inputName(m.name)] = new ort.Tensor('float32', w, [m.in, m.out])
    }
    return feeds
  }
}

