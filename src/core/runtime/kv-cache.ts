/**
 * The key/value cache of a batch of sequences, as the decoder graph takes and
 * returns it: per layer, keys and values float32 `[rows, kvHeads, capacity,
 * headDim]`, row r's first `lengths[r]` positions valid (right-padded).
 * Rows can be selected (`take`) and batches joined (`concat`), so a
 * scheduler can let requests join and leave a running batch.
 *
 * A cache is either grown (each forward call returns new arrays holding the
 * past and the new positions: simple, but every step copies the whole cache)
 * or allocated (`allocate`, `withCapacity`: `inPlace`, the arrays are fed as
 * the past, the graph returns only the new positions' keys and values, and
 * `writeNew` puts them into the same arrays; the forward call returns a cache
 * over the same arrays with the new lengths, and the old object must not be
 * used again). The allocated form is the fast one on onnxruntime-node: the
 * binding feeds arrays cheaply but copies every output back at about 0.5 ms
 * per MiB (`npm run bench:step`), so a grown cache pays for its whole size
 * every step and an allocated one for a few rows. Grown caches stay the
 * default for one-off calls (scoring a text), where nothing is kept.
 */
import type {DecoderConfig} from './decoder-config.js'

/** A batch's keys and values per layer, right-padded rows (see the module comment). */
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
    /** Whether forward calls write new positions into these arrays (see the module comment). */
    readonly inPlace: boolean = false,
  ) {}

  /** An allocated cache of `capacity` positions for `rows` new sequences, updated in place. */
  static allocate(config: Pick<DecoderConfig, 'layers' | 'kvHeads' | 'headDim'>, rows: number, capacity: number): KvCache {
    if (!(Number.isSafeInteger(capacity) && capacity > 0)) throw new RangeError(`KV cache: capacity must be a positive integer (got ${capacity})`)
    const size = rows * config.kvHeads * capacity * config.headDim
    const make = () => Array.from({length: config.layers}, () => new Float32Array(size))
    return new KvCache(config.layers, config.kvHeads, config.headDim, new Array<number>(rows).fill(0), capacity, make(), make(), true)
  }

  /** The same rows in newly allocated arrays of `capacity` positions, updated in place from now on. */
  withCapacity(capacity: number): KvCache {
    if (this.lengths.some((l) => l > capacity)) throw new RangeError(`KV cache: capacity ${capacity} is below a row's length (${Math.max(...this.lengths)})`)
    const out = KvCache.allocate(this, this.rows, capacity)
    for (let l = 0; l < this.layers; l++) this.copyRows(l, out.keys[l]!, out.values[l]!, capacity)
    return new KvCache(this.layers, this.kvHeads, this.headDim, [...this.lengths], capacity, out.keys, out.values, true)
  }

  /**
   * Write the new positions of one layer: `keys`/`values` `[rows · tokens, kvHeads · headDim]`
   * as the graph returns them (row r's new token s at r · tokens + s), `counts[r]` of them
   * valid, going to positions `lengths[r]` onwards.
   * @throws RangeError when they do not fit this cache
   */
  writeNew(layer: number, keys: Float32Array, values: Float32Array, tokens: number, counts: readonly number[]): void {
    const d = this.headDim
    const width = this.kvHeads * d
    if (counts.length !== this.rows || keys.length !== this.rows * tokens * width || values.length !== keys.length) throw new RangeError(`KV cache: new keys of ${keys.length} values for ${this.rows} rows of ${tokens} tokens`)
    const K = this.keys[layer]!
    const V = this.values[layer]!
    counts.forEach((count, r) => {
      const past = this.lengths[r]!
      if (past + count > this.capacity) throw new RangeError(`KV cache: row ${r} would hold ${past + count} positions in a capacity of ${this.capacity}`)
      for (let s = 0; s < count; s++)
        for (let h = 0; h < this.kvHeads; h++) {
          const src = (r * tokens + s) * width + h * d
          const dst = ((r * this.kvHeads + h) * this.capacity + past + s) * d
          K.set(keys.subarray(src, src + d), dst)
          V.set(values.subarray(src, src + d), dst)
        }
    })
  }

  /** This cache's arrays with new lengths (after the graph wrote in place). */
  advanced(lengths: readonly number[]): KvCache {
    return KvCache.of(this, lengths, this.capacity, this.keys, this.values, this.inPlace)
  }

  private copyRows(layer: number, keys: Float32Array, values: Float32Array, capacity: number): void {
    const d = this.headDim
    this.lengths.forEach((len, r) => {
      for (let h = 0; h < this.kvHeads; h++) {
        const src = (r * this.kvHeads + h) * this.capacity * d
        const dst = (r * this.kvHeads + h) * capacity * d
        keys.set(this.keys[layer]!.subarray(src, src + len * d), dst)
        values.set(this.values[layer]!.subarray(src, src + len * d), dst)
      }
    })
  }

  /** An empty cache for `rows` sequences (nothing seen yet). */
  static empty(config: Pick<DecoderConfig, 'layers' | 'kvHeads' | 'headDim'>, rows: number): KvCache {
    const none = Array.from({length: config.layers}, () => new Float32Array(0))
    return new KvCache(config.layers, config.kvHeads, config.headDim, new Array<number>(rows).fill(0), 0, none, none)
  }

  /**
   * A cache over arrays the graph returned.
   * @throws RangeError when an array's length does not match the layout
   */
  static of(config: Pick<DecoderConfig, 'layers' | 'kvHeads' | 'headDim'>, lengths: readonly number[], capacity: number, keys: readonly Float32Array[], values: readonly Float32Array[], inPlace = false): KvCache {
    const size = lengths.length * config.kvHeads * capacity * config.headDim
    if (keys.length !== config.layers || values.length !== config.layers) throw new RangeError(`KV cache: ${keys.length} key and ${values.length} value layers for ${config.layers} layers`)
    for (const a of [...keys, ...values]) if (a.length !== size) throw new RangeError(`KV cache: a layer holds ${a.length} values (expected ${size})`)
    if (lengths.some((l) => l > capacity)) throw new RangeError(`KV cache: a length exceeds the capacity ${capacity}`)
    return new KvCache(config.layers, config.kvHeads, config.headDim, [...lengths], capacity, keys, values, inPlace)
  }

  get rows(): number {
    return this.lengths.length
  }

  /** Bytes held (keys and values of every layer). */
  get bytes(): number {
    return 2 * this.layers * this.rows * this.kvHeads * this.capacity * this.headDim * 4
  }

  /**
   * Rows `rows` (in that order) in new arrays: a grown cache, its capacity cut to their longest
   * length, or, with `capacity`, an allocated one of that capacity (updated in place from now on).
   */
  take(rows: readonly number[], capacity?: number): KvCache {
    for (const r of rows) if (!(Number.isInteger(r) && r >= 0 && r < this.rows)) throw new RangeError(`KV cache: row ${r} of ${this.rows}`)
    return KvCache.gather(this.layers, this.kvHeads, this.headDim, rows.map((r) => ({cache: this as KvCache, row: r})), capacity)
  }

  /**
   * The rows of several caches of one model, in order, as one batch: grown, or, with
   * `capacity`, allocated (as `take`).
   * @throws RangeError when the caches are of different models
   */
  static concat(caches: readonly KvCache[], capacity?: number): KvCache {
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
      capacity,
    )
  }

  private static gather(layers: number, kvHeads: number, headDim: number, picks: ReadonlyArray<{cache: KvCache; row: number}>, allocate?: number): KvCache {
    const lengths = picks.map((p) => p.cache.lengths[p.row]!)
    const longest = Math.max(0, ...lengths)
    if (allocate !== undefined && !(Number.isSafeInteger(allocate) && allocate > 0 && allocate >= longest)) throw new RangeError(`KV cache: capacity ${allocate} must be a positive integer of at least the longest row (${longest})`)
    const capacity = allocate ?? longest
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
    return new KvCache(layers, kvHeads, headDim, lengths, capacity, keys, values, allocate !== undefined)
  }
}
