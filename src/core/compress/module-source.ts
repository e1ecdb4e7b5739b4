/**
 * What shared-B compression reads of one base module: the adapters that
 * target it (slot, rank, scaling) and their A and B, a chunk of adapters at a
 * time, so a module's memory is bounded by a chunk and the module's Gram
 * matrix, not by the number of adapters.
 */
import {UsageError} from '../errors.js'

/** One adapter's block on a module, as the in-memory API takes it. */
export interface AdapterBlock {
  /** Its slot in the pack (1..N; slot 0 is the null adapter). */
  readonly slot: number
  readonly r: number
  /** ΔW = scaling · B A. */
  readonly scaling: number
  /** `[r, in]` row-major. */
  readonly a: Float32Array
  /** `[out, r]` row-major. */
  readonly b: Float32Array
}

/** One module's adapters in memory. */
export interface ModuleInput {
  /** Module path, e.g. `model.layers.0.self_attn.q_proj`. */
  readonly name: string
  readonly kind?: 'linear' | 'embedding'
  readonly in: number
  readonly out: number
  /** The adapters that target the module, in slot order. */
  readonly adapters: readonly AdapterBlock[]
}

/** An adapter's entry on a module (its data comes from `ModuleSource.read`). */
export interface ModuleAdapter {
  readonly slot: number
  readonly r: number
  readonly scaling: number
}

/** A chunk of a module's adapters, zero-padded to the module's largest rank R. */
export interface AdapterChunk {
  /** `[count, R, in]` float32: rows r..R−1 of each adapter are zero. */
  readonly a: Float32Array
  /** `[count, out, R]` float32: columns r..R−1 of each adapter are zero. */
  readonly b: Float32Array
}

export interface ModuleSource {
  readonly name: string
  readonly kind: 'linear' | 'embedding'
  readonly in: number
  readonly out: number
  /** The largest rank among `adapters`. */
  readonly R: number
  /** Adapters that target the module, in slot order (at least one). */
  readonly adapters: readonly ModuleAdapter[]
  /** Adapters `start .. start+count−1` (indices into `adapters`, not slots). */
  read(start: number, count: number): Promise<AdapterChunk>
  /** The same in float64, when the source keeps it (else `readFloat64` converts). */
  read64?(start: number, count: number): Promise<AdapterChunk64>
}

/** `AdapterChunk` in float64. */
export interface AdapterChunk64 {
  readonly a: Float64Array
  readonly b: Float64Array
}

/** Adapters `start .. start+count−1` of `source` in float64. */
export async function readFloat64(source: ModuleSource, start: number, count: number): Promise<AdapterChunk64> {
  if (source.read64) return source.read64(start, count)
  const {a, b} = await source.read(start, count)
  return {a: Float64Array.from(a), b: Float64Array.from(b)}
}

/**
 * A `ModuleSource` over in-memory blocks.
 * @throws UsageError when the module has no adapters, a block's size does not
 *   match its rank and the module's dims, or slots are not increasing positive integers
 */
export function moduleSourceFromInput(input: ModuleInput): ModuleSource {
  const {name, adapters} = input
  if (adapters.length === 0) throw new UsageError('COMPRESS_EMPTY_MODULE', `compress: module "${name}" has no adapters`)
  let previous = 0
  for (const ad of adapters) {
    if (!Number.isSafeInteger(ad.slot) || ad.slot <= previous) throw new UsageError('COMPRESS_BAD_INPUT', `compress: module "${name}": slots must be increasing integers from 1 (got ${ad.slot} after ${previous})`)
    previous = ad.slot
    if (!Number.isSafeInteger(ad.r) || ad.r < 1) throw new UsageError('COMPRESS_BAD_INPUT', `compress: module "${name}" slot ${ad.slot}: rank must be a positive integer (got ${ad.r})`)
    if (ad.a.length !== ad.r * input.in) throw new UsageError('COMPRESS_BAD_INPUT', `compress: module "${name}" slot ${ad.slot}: A has ${ad.a.length} values, expected r × in = ${ad.r} × ${input.in}`)
    if (ad.b.length !== input.out * ad.r) throw new UsageError('COMPRESS_BAD_INPUT', `compress: module "${name}" slot ${ad.slot}: B has ${ad.b.length} values, expected out × r = ${input.out} × ${ad.r}`)
    if (!Number.isFinite(ad.scaling)) throw new UsageError('COMPRESS_BAD_INPUT', `compress: module "${name}" slot ${ad.slot}: scaling is not finite`)
  }
  const R = Math.max(...adapters.map((a) => a.r))
  return {
    name,
    kind: input.kind ?? 'linear',
    in: input.in,
    out: input.out,
    R,
    adapters: adapters.map(({slot, r, scaling}) => ({slot, r, scaling})),
    async read(start, count) {
      const a = new Float32Array(count * R * input.in)
      const b = new Float32Array(count * input.out * R)
      for (let t = 0; t < count; t++) {
        const ad = adapters[start + t]!
        a.set(ad.a, t * R * input.in)
        for (let row = 0; row < input.out; row++) b.set(ad.b.subarray(row * ad.r, (row + 1) * ad.r), (t * input.out + row) * R)
      }
      return {a, b}
    },
  }
}

/** A module's padded A and B (float64) are kept in memory for its later passes up to this size. */
export const MODULE_CACHE_BYTES = 512 * 1024 * 1024

/**
 * `source` with all of its data read once (in float64), on the first read,
 * and served from memory afterwards (the basis and the stored values take
 * several passes), when it takes at most `maxBytes`; `source` itself otherwise.
 */
export function cachedModuleSource(source: ModuleSource, maxBytes = MODULE_CACHE_BYTES): ModuleSource {
  const N = source.adapters.length
  const aSize = source.R * source.in
  const bSize = source.out * source.R
  if (N * (aSize + bSize) * 8 > maxBytes) return source
  let all: Promise<AdapterChunk64> | undefined
  const load = () => (all ??= readFloat64(source, 0, N))
  return {
    ...source,
    async read(start, count) {
      const {a, b} = await load()
      return {a: Float32Array.from(a.subarray(start * aSize, (start + count) * aSize)), b: Float32Array.from(b.subarray(start * bSize, (start + count) * bSize))}
    },
    async read64(start, count) {
      const {a, b} = await load()
      return {a: a.subarray(start * aSize, (start + count) * aSize), b: b.subarray(start * bSize, (start + count) * bSize)}
    },
  }
}
