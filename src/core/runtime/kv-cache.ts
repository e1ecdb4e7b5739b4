/**
 * The key/value cache of a batch of sequences, as the decoder graph takes and
 * returns it: per layer, keys and values float32 `[rows, kvHeads, capacity,
 * headDim]`, row r's first `lengths[r]` positions valid (right-padded).
 * Rows can be selected (`take`) and batches joined (`concat`), so a
 * scheduler can let requests join and leave a running batch.
 */
import type {DecoderConfig} from './decoder-config.js'

export class KvCache {
  private constructor(
    readonly layers: number,
    readonly kvHeads: number,
    readonly headDim: number,
    /** Valid positions per row. */
    readonly lengths: readonly number[],
    /** Positions allocated per row (≥ every length). */
    readonly capacity: number,
    /** Per layer: keys `[rows, kvHeads, capacity, headDim]`. */
    readonly keys: readonly Float32Array[],
    /** Per layer: values, same layout. */
    readonly values: readonly Float32Array[],
  ) {}

  /** An empty cache for `rows` sequences (nothing seen yet). */
  static empty(config: Pick<DecoderConfig, 'layers' | 'kvHeads' | 'headDim'>, rows: number): KvCache {
    const none = Array.from({length: config.layers}, () => new Float32Array(0))
    return new KvCache(config.layers, config.kvHeads, config.headDim, new Array<number>(rows).fill(0), 0, none, none)
  }

  /**
   * A cache over arrays the graph returned.
   * @throws RangeError when an array's length does not match the layout
   */
  static of(config: Pick<DecoderConfig, 'layers' | 'kvHeads' | 'headDim'>, lengths: readonly number[], capacity: number, keys: readonly Float32Array[], values: readonly Float32Array[]): KvCache {
    const size = lengths.length * config.kvHeads * capacity * config.headDim
    if (keys.length !== config.layers || values.length !== config.layers) throw new RangeError(`KV cache: ${keys.length} key and ${values.length} value layers for ${config.layers} layers`)
    for (const a of [...keys, ...values]) if (a.length !== size) throw new RangeError(`KV cache: a layer holds ${a.length} values (expected ${size})`)
    if (lengths.some((l) => l > capacity)) throw new RangeError(`KV cache: a length exceeds the capacity ${capacity}`)
    return new KvCache(config.layers, config.kvHeads, config.headDim, [...lengths], capacity, keys, values)
  }

  get rows(): number {
    return this.lengths.length
  }

  /** Bytes held (keys and values of every layer). */
  get bytes(): number {
    return 2 * this.layers * this.rows * this.kvHeads * this.capacity * this.headDim * 4
  }

  /** A cache of rows `rows` (in that order), its capacity cut to their longest length. */
  take(rows: readonly number[]): KvCache {
    for (const r of rows) if (!(Number.isInteger(r) && r >= 0 && r < this.rows)) throw new RangeError(`KV cache: row ${r} of ${this.rows}`)
    return KvCache.gather(this.layers, this.kvHeads, this.headDim, rows.map((r) => ({cache: this as KvCache, row: r})))
  }

  /**
   * The rows of several caches of one model, in order, as one batch.
   * @throws RangeError when the caches are of different models
   */
  static concat(caches: readonly KvCache[]): KvCache {
    if (caches.length === 0) throw new RangeError('KV cache: nothing to concatenate')
    const [first] = caches as [KvCache]
    for (const c of caches) {
      if (c.layers !== first.layers || c.kvHeads !== first.kvHeads || c.headDim !== first.headDim) throw new RangeError('KV cache: caches of different models')
    }
    return KvCache.gather(
      first.layers,
      first.kvHeads,
      first.headDim,
      caches.flatMap((cache) => cache.lengths.map((_, row) => ({cache, row}))),
    )
  }

  private static gather(layers: number, kvHeads: number, headDim: number, picks: ReadonlyArray<{cache: KvCache; row: number}>): KvCache {
    const lengths = picks.map((p) => p.cache.lengths[p.row]!)
    const capacity = Math.max(0, ...lengths)
    const keys: Float32Array[] = []
    const values: Float32Array[] = []
    for (let l = 0; l < layers; l++) {
      const k = new Float32Array(picks.length * kvHeads * capacity * headDim)
      const v = new Float32Array(k.length)
      picks.forEach(({cache, row}, i) => {
        const n = cache.lengths[row]! * headDim
        for (let h = 0; h < kvHeads; h++) {
          const src = (row * kvHeads + h) * cache.capacity * headDim
          const dst = (i * kvHeads + h) * capacity * headDim
          k.set(cache.keys[l]!.subarray(src, src + n), dst)
          v.set(cache.values[l]!.subarray(src, src + n), dst)
        }
      })
      keys.push(k)
      values.push(v)
    }
    return new KvCache(layers, kvHeads, headDim, lengths, capacity, keys, values)
  }
}
