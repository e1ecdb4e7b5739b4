/**
 * A `BatchEngine` over one decoder-runtime model (`DecoderModel`): the base
 * alone, or with routed adapters (each row's adapter fed to the strategy's
 * routing inputs), greedy decoding, `KvCache` rows split and joined.
 */
import type {DecoderModel} from '../runtime/decoder-model.js'
import {argmax} from '../runtime/generate.js'
import {KvCache} from '../runtime/kv-cache.js'
import type {BatchEngine, EngineRow, EngineStep} from './batch-engine.js'

/** A `BatchEngine` on the decoder runtime: its cache is a `KvCache`, whose rows are joined, kept and counted here. */
export abstract class KvCacheEngine implements BatchEngine<KvCache> {
  abstract prefill(rows: readonly EngineRow[]): Promise<EngineStep<KvCache>>

  abstract decode(cache: KvCache, rows: readonly EngineRow[]): Promise<EngineStep<KvCache>>

  join(caches: readonly KvCache[]): KvCache {
    return KvCache.concat(caches)
  }

  keep(cache: KvCache, rows: readonly number[]): KvCache {
    return cache.take(rows)
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
    const out = await this.model.forward({tokens: rows.map((r) => r.tokens), ...this.adapters(rows)})
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

/** KV-cache bytes one position of one request takes (keys and values of every layer, float32). */
export function kvBytesPerToken(config: {layers: number; kvHeads: number; headDim: number}): number {
  return 2 * config.layers * config.kvHeads * config.headDim * 4
}
