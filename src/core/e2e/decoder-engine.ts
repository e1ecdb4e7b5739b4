/**
 * A `BatchEngine` over one decoder-runtime model (`DecoderModel`): the base
 * alone, or with routed adapters (each row's adapter fed to the strategy's
 * routing inputs), greedy decoding, `KvCache` rows split and joined.
 */
import type {DecoderModel} from '../runtime/decoder-model.js'
import {argmax} from '../runtime/generate.js'
import {KvCache} from '../runtime/kv-cache.js'
import type {BatchEngine, EngineRow, EngineStep} from './batch-engine.js'

/**
 * A `BatchEngine` on the decoder runtime: its cache is a `KvCache`, whose rows are joined, kept and
 * counted here. Caches are allocated (written in place, `KvCache.allocate`), never grown: a grown
 * cache is returned whole through onnxruntime-node's binding every step, about 0.5 ms per MiB
 * (`npm run bench:step`), an allocated one only its new rows. A cache is allocated for the most
 * positions its rows' requests reach (`EngineRow.positions`), or, where that is not known, for as
 * many again as its longest row holds (the model doubles it when it runs out). Joined and kept
 * rows keep the capacity they had.
 */
export abstract class KvCacheEngine implements BatchEngine<KvCache> {
  abstract prefill(rows: readonly EngineRow[]): Promise<EngineStep<KvCache>>

  abstract decode(cache: KvCache, rows: readonly EngineRow[]): Promise<EngineStep<KvCache>>

  join(caches: readonly KvCache[]): KvCache {
    return KvCache.concat(caches, Math.max(...caches.map((c) => (c.inPlace ? c.capacity : roomFor(Math.max(...c.lengths))))))
  }

  keep(cache: KvCache, rows: readonly number[]): KvCache {
    return cache.take(rows, cache.inPlace ? cache.capacity : roomFor(Math.max(...rows.map((r) => cache.lengths[r]!))))
  }

  cacheBytes(cache: KvCache): number {
    return cache.bytes
  }
}

/** Greedy decoding over `model` (see the module comment). */
export class DecoderEngine extends KvCacheEngine {
  constructor(
    private readonly model: DecoderModel,
    /** Feed each row's adapter to the model's routing inputs (false: the base model ignores them). */
    private readonly routed: boolean,
  ) {
    super()
  }

  override async prefill(rows: readonly EngineRow[]): Promise<EngineStep<KvCache>> {
    const cache = this.model.emptyCache(rows.length, capacityFor(rows))
    const out = await this.model.forward({tokens: rows.map((r) => r.tokens), cache, ...this.adapters(rows)})
    return {next: out.logits.map(argmax), cache: out.cache}
  }

  override async decode(cache: KvCache, rows: readonly EngineRow[]): Promise<EngineStep<KvCache>> {
    const out = await this.model.forward({tokens: rows.map((r) => r.tokens), cache, ...this.adapters(rows)})
    return {next: out.logits.map(argmax), cache: out.cache}
  }

  private adapters(rows: readonly EngineRow[]): {adapters?: (string | null)[]} {
    return this.routed ? {adapters: rows.map((r) => r.adapter)} : {}
  }
}

/** Positions to allocate for rows whose longest holds `longest`, when their requests' lengths are not known: as many again. */
export function roomFor(longest: number): number {
  return Math.max(1, 2 * longest)
}

/** Positions to allocate for new rows: the most any of their requests reaches, or `roomFor` their longest prompt. */
export function capacityFor(rows: readonly EngineRow[]): number {
  return Math.max(...rows.map((r) => r.positions ?? roomFor(r.tokens.length)))
}

/** KV-cache bytes one position of one request takes (keys and values of every layer, float32). */
export function kvBytesPerToken(config: {layers: number; kvHeads: number; headDim: number}): number {
  return 2 * config.layers * config.kvHeads * config.headDim * 4
}
