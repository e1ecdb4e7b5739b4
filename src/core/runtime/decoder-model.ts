/**
 * A decoder model variant (a base, optionally with adapters merged or
 * unmerged) as one onnxruntime session, and the forward pass over a batch of
 * sequences with a KV cache.
 *
 * `GroupQueryAttention` takes a batch either as a first prompt (no row has a
 * past; rows right-padded) or as one new token per row (any past lengths);
 * a batch mixing the two, with more than one row, runs row by row.
 */
import {InputError, UsageError} from '../errors.js'
import {GraphBuilder} from '../onnx/graph-builder.js'
import {ExecutionProvider, OrtSession, OrtTensor, loadOrt, sessionOptions} from '../onnx/session.js'
import type {DecoderConfig} from './decoder-config.js'
import {DECODER_IO, DecoderGraphSummary, buildDecoderGraph} from './decoder-graph.js'
import type {DecoderWeights} from './decoder-weights.js'
import {INLINE_WEIGHT_LIMIT, InitializerStore} from './initializer-store.js'
import {KvCache} from './kv-cache.js'
import type {ProjectionDeltas} from './projection-delta.js'

/** Positions of the RoPE tables when the config allows more (override with `maxPositions`). */
export const DEFAULT_MAX_POSITIONS = 8192

/** A model variant: its weights (merged adapters included) and the adapters applied unmerged. */
export interface DecoderModelOptions {
  weights: DecoderWeights
  /** Adapters applied unmerged (merged ones are already in `weights`). */
  deltas?: ProjectionDeltas
  /** Longest sequence (past + new) the model runs; default min(config, 8192). */
  maxPositions?: number
  ep?: ExecutionProvider
  /** Intra-op threads. */
  threads?: number
  /** Weights in an ONNX external data file (default: when they exceed 1 GiB). */
  externalData?: boolean
}

/** One forward call: new tokens for each row of a batch, and the rows' cache. */
export interface ForwardInput {
  /** Per row: the new tokens (at least one). */
  readonly tokens: readonly (readonly number[])[]
  /** The rows' cache (same order), or undefined when every row starts empty. */
  readonly cache?: KvCache
  /** Logits of each row's last new token (default) or of all its new tokens. */
  readonly logits?: 'last' | 'all'
  /** Per row: the adapter it asks for, for routed delta providers. */
  readonly adapters?: readonly (string | null)[]
}

/** Logits of the asked positions per row, and the cache with the new tokens. */
export interface ForwardOutput {
  /** Per row: float32 `[1 or n, vocab]` row-major. */
  readonly logits: Float32Array[]
  /** The rows' cache with the new tokens appended. */
  readonly cache: KvCache
}

/** Bytes of float32 weights the graph will hold (an estimate to choose external data). */
function estimateBytes(c: DecoderConfig): number {
  const q = c.heads * c.headDim
  const kv = c.kvHeads * c.headDim
  const perLayer = c.hidden * (2 * q + 2 * kv) + 3 * c.hidden * c.intermediate
  return 4 * (c.layers * perLayer + (c.tieEmbeddings ? 1 : 2) * c.vocab * c.hidden)
}

/** One model variant in one onnxruntime session: `forward` with a KV cache, `sequenceLogits` for scoring. */
export class DecoderModel {
  private constructor(
    readonly config: DecoderConfig,
    readonly maxPositions: number,
    readonly summary: DecoderGraphSummary,
    private readonly session: OrtSession,
    private readonly deltas: ProjectionDeltas | undefined,
  ) {}

  /**
   * Build the graph from `weights` (and `deltas`) and open its session.
   * The weights source stays open; close it yourself.
   * @throws InputError when a weight disagrees with the config
   */
  static async create(options: DecoderModelOptions): Promise<DecoderModel> {
    const config = options.weights.config
    const maxPositions = Math.min(options.maxPositions ?? DEFAULT_MAX_POSITIONS, config.maxPositions)
    if (!(Number.isSafeInteger(maxPositions) && maxPositions > 0)) throw new UsageError('BAD_MAX_POSITIONS', `maxPositions must be a positive integer (got ${options.maxPositions})`)
    const g = new GraphBuilder(`decoder-${config.architecture}`)
    const external = options.externalData ?? estimateBytes(config) > INLINE_WEIGHT_LIMIT
    const store = external ? await InitializerStore.external(g) : InitializerStore.inline(g)
    try {
      const summary = await buildDecoderGraph({weights: options.weights, store, maxPositions, deltas: options.deltas})
      const encoded = await store.finish()
      const ort = await loadOrt()
      const settings = sessionOptions({ep: options.ep ?? 'cpu', threads: options.threads})
      const session = encoded.kind === 'bytes' ? await ort.InferenceSession.create(encoded.bytes, settings) : await ort.InferenceSession.create(encoded.path, settings)
      return new DecoderModel(config, maxPositions, summary, session, options.deltas)
    } finally {
      await store.dispose()
    }
  }

  /**
   * A cache for `rows` new sequences: empty and grown by each call, or, with
   * `capacity`, allocated once and written in place (no copy per step; it is
   * re-allocated, doubled, when a call needs more room).
   */
  emptyCache(rows: number, capacity?: number): KvCache {
    return capacity === undefined ? KvCache.empty(this.config, rows) : KvCache.allocate(this.config, rows, Math.min(capacity, this.maxPositions))
  }

  /**
   * Run new tokens for a batch of rows and return their logits and the grown cache.
   * @throws UsageError for an empty row, a token id outside the vocabulary, or a sequence past `maxPositions`
   */
  async forward(input: ForwardInput): Promise<ForwardOutput> {
    const rows = input.tokens.length
    if (rows === 0) throw new UsageError('FORWARD_EMPTY', 'forward: no rows')
    const cache = input.cache ?? this.emptyCache(rows)
    if (cache.rows !== rows) throw new UsageError('FORWARD_CACHE_ROWS', `forward: ${rows} rows of tokens but the cache holds ${cache.rows}`)
    for (let r = 0; r < rows; r++) {
      const t = input.tokens[r]!
      if (t.length === 0) throw new UsageError('FORWARD_EMPTY', `forward: row ${r} has no new tokens`)
      for (const id of t) if (!(Number.isSafeInteger(id) && id >= 0 && id < this.config.vocab)) throw new UsageError('TOKEN_OUT_OF_RANGE', `forward: token id ${id} is outside the vocabulary (0…${this.config.vocab - 1})`)
      const total = cache.lengths[r]! + t.length
      if (total > this.maxPositions) throw new UsageError('CONTEXT_TOO_LONG', `forward: row ${r} would hold ${total} positions, more than this model runs (${this.maxPositions})`)
    }
    const prompt = cache.lengths.every((l) => l === 0)
    const single = input.tokens.every((t) => t.length === 1)
    if (rows === 1 || prompt || single) return this.run(input.tokens, prompt && !cache.inPlace ? this.emptyCache(rows) : cache, input.logits ?? 'last', input.adapters)
    const parts: ForwardOutput[] = []
    for (let r = 0; r < rows; r++) parts.push(await this.run([input.tokens[r]!], cache.take([r]), input.logits ?? 'last', input.adapters ? [input.adapters[r]!] : undefined))
    const joined = KvCache.concat(parts.map((p) => p.cache))
    return {logits: parts.flatMap((p) => p.logits), cache: cache.inPlace ? joined.withCapacity(Math.max(cache.capacity, joined.capacity)) : joined}
  }

  /**
   * Logits at every position of each sequence (each run from an empty cache),
   * in batches of at most `maxBatchTokens` padded tokens.
   * @returns per sequence: float32 `[length, vocab]`
   */
  async sequenceLogits(sequences: readonly (readonly number[])[], options: {maxBatchTokens?: number; adapters?: readonly (string | null)[]} = {}): Promise<Float32Array[]> {
    const budget = options.maxBatchTokens ?? 4096
    const out: Float32Array[] = new Array(sequences.length)
    const order = sequences.map((s, i) => i).sort((a, b) => sequences[b]!.length - sequences[a]!.length)
    for (let i = 0; i < order.length; ) {
      const longest = sequences[order[i]!]!.length
      const take = Math.max(1, Math.floor(budget / Math.max(1, longest)))
      const batch = order.slice(i, i + take)
      const result = await this.forward({tokens: batch.map((j) => sequences[j]!), logits: 'all', adapters: options.adapters ? batch.map((j) => options.adapters![j]!) : undefined})
      batch.forEach((j, k) => (out[j] = result.logits[k]!))
      i += batch.length
    }
    return out
  }

  private async run(tokens: readonly (readonly number[])[], cache: KvCache, which: 'last' | 'all', adapters: readonly (string | null)[] | undefined): Promise<ForwardOutput> {
    const ort = await loadOrt()
    const c = this.config
    const B = tokens.length
    const S = Math.max(...tokens.map((t) => t.length))
    const ids = new BigInt64Array(B * S)
    const positions = new BigInt64Array(B * S)
    const seqlens = new Int32Array(B)
    const index: number[] = []
    const newLengths: number[] = []
    let total = 0
    for (let b = 0; b < B; b++) {
      const t = tokens[b]!
      const past = cache.lengths[b]!
      for (let s = 0; s < t.length; s++) {
        ids[b * S + s] = BigInt(t[s]!)
        positions[b * S + s] = BigInt(past + s)
      }
      seqlens[b] = past + t.length - 1
      newLengths.push(past + t.length)
      total = Math.max(total, past + t.length)
      if (which === 'last') index.push(b * S + t.length - 1)
      else for (let s = 0; s < t.length; s++) index.push(b * S + s)
    }
    if (cache.inPlace && cache.capacity < total) cache = cache.withCapacity(Math.min(this.maxPositions, Math.max(total, 2 * cache.capacity)))
    const io = DECODER_IO
    const feeds: Record<string, OrtTensor> = {
      [io.inputIds]: new ort.Tensor('int64', ids, [B, S]),
      [io.positionIds]: new ort.Tensor('int64', positions, [B, S]),
      [io.seqlensK]: new ort.Tensor('int32', seqlens, [B]),
      [io.totalSequenceLength]: new ort.Tensor('int32', Int32Array.of(total), []),
      [io.logitsIndex]: new ort.Tensor('int64', BigInt64Array.from(index.map(BigInt)), [index.length]),
    }
    // an in-place cache fetches only the new positions' keys and values and writes them into its own
    // arrays: the whole present cache is never returned through the binding (see the module comment)
    const fetches: Record<string, OrtTensor | null> = {[io.logits]: null}
    for (let l = 0; l < c.layers; l++) {
      const dims = [B, c.kvHeads, cache.capacity, c.headDim]
      feeds[io.pastKey(l)] = new ort.Tensor('float32', cache.keys[l]!, dims)
      feeds[io.pastValue(l)] = new ort.Tensor('float32', cache.values[l]!, dims)
      if (cache.inPlace) {
        fetches[io.newKey(l)] = null
        fetches[io.newValue(l)] = null
      } else {
        fetches[io.presentKey(l)] = null
        fetches[io.presentValue(l)] = null
      }
    }
    if (this.deltas?.feeds) Object.assign(feeds, await this.deltas.feeds({rows: B, tokens: S, adapters: adapters ?? new Array<null>(B).fill(null)}))
    const out = await this.session.run(feeds, fetches)
    const logits = out[io.logits]!.data as Float32Array
    const V = c.vocab
    const perRow: Float32Array[] = []
    let at = 0
    for (let b = 0; b < B; b++) {
      const n = which === 'last' ? 1 : tokens[b]!.length
      perRow.push(logits.slice(at * V, (at + n) * V))
      at += n
    }
    if (cache.inPlace) {
      const counts = tokens.map((t) => t.length)
      for (let l = 0; l < c.layers; l++) cache.writeNew(l, out[io.newKey(l)]!.data as Float32Array, out[io.newValue(l)]!.data as Float32Array, S, counts)
      return {logits: perRow, cache: cache.advanced(newLengths)}
    }
    const keys: Float32Array[] = []
    const values: Float32Array[] = []
    let capacity = 0
    for (let l = 0; l < c.layers; l++) {
      const k = out[io.presentKey(l)]!
      capacity = k.dims[2]!
      keys.push(k.data as Float32Array)
      values.push(out[io.presentValue(l)]!.data as Float32Array)
    }
    return {logits: perRow, cache: KvCache.of(c, newLengths, capacity, keys, values)}
  }

  /** Release the session. */
  async release(): Promise<void> {
    await this.session.release()
  }
}

/** Whether a model path has the token embedding the graph needs (a quick check before building). */
export function assertDecoderTensors(weights: DecoderWeights): void {
  const missing = ['model.embed_tokens.weight', 'model.norm.weight'].filter((n) => !weights.names.has(n))
  if (missing.length > 0) throw new InputError('DECODER_MISSING_TENSOR', `read ${weights.path}: no ${missing.join(', ')} (is this a Llama-family decoder?)`)
}
