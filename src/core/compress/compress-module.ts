/**
 * Shared-B compression of one module: the basis, the K that the selection
 * asks for, the stored values (handed to a sink) and the errors measured on
 * them; and the dry runs behind `--sweep`.
 */
import {DTYPES, FloatOutputDType} from '../dtype.js'
import {UsageError} from '../errors.js'
import type {MatMulEngine} from '../linalg/matmul-engine.js'
import type {ModuleAdapter, ModuleSource} from './module-source.js'
import {type ProjectedModule, projectModule} from './project-module.js'
import {
  ModuleShape,
  RankSelection,
  bytesAfter,
  bytesBefore,
  maxUsefulRank,
  rankForModule,
  rankForSavings,
  savingsPercent,
} from './rank-selection.js'
import {type BasisMethod, type SharedBasis, basisErrors, computeSharedBasis} from './shared-basis.js'

/** `--max-error` first computes this many basis columns, and four times more each time that is not enough. */
export const MAX_ERROR_FIRST_WIDTH = 32

export interface ModuleCompressOptions {
  engine: MatMulEngine
  /** Output dtype. */
  dtype: FloatOutputDType
  /** Bytes per element of the input stacks (for `bytes_before`). */
  inputBytesPerElement: number
  /** S = N + 1 of the pack. */
  slots: number
  normalize?: boolean
  method?: BasisMethod
  tolerance?: number
  chunk?: number
  /**
   * Receives the stored A' of adapters `start..start+count−1` of the module
   * ([count, K, in] bytes). Called again from `start = 0` when `--max-error`
   * has to retry with a larger K: `restart()` is called before each retry.
   */
  sink?: {write(start: number, count: number, bytes: Uint8Array): Promise<void>; restart(): Promise<void>}
}

/** One module, compressed. */
export interface CompressedModule {
  readonly name: string
  readonly kind: 'linear' | 'embedding'
  readonly in: number
  readonly out: number
  readonly R: number
  readonly rankSum: number
  readonly K: number
  /** The adapters of the module (slot, r, scaling), in slot order; `errors` follows it. */
  readonly adapters: readonly ModuleAdapter[]
  /** Û [out, K] in the output dtype. */
  readonly sharedB: Uint8Array
  /** Measured relative error per adapter, on the stored values. */
  readonly errors: Float64Array
  readonly bytesBefore: number
  readonly bytesAfter: number
  readonly method: 'dense' | 'iterative'
  readonly converged: boolean
}

/** One K of a sweep on one module. */
export interface SweepPoint {
  readonly K: number
  readonly bytesAfter: number
  readonly errors: Float64Array
}

/** The byte-count view of a module source. */
export function shapeOf(source: ModuleSource, slots: number): ModuleShape {
  return {name: source.name, in: source.in, out: source.out, R: source.R, rankSum: source.adapters.reduce((s, a) => s + a.r, 0), slots}
}

/** What a selection decided for one module; `--max-error` also brings the basis and the measured dry run. */
export interface RankChoice {
  readonly k: number
  readonly basis?: SharedBasis
  readonly projected?: ProjectedModule
}

/**
 * Choose K for one module: analytically for `--rank` and `--savings`; for
 * `--max-error` by computing the basis and measuring stored-dtype errors
 * (handing each attempt's values to `options.sink`, when given).
 * @throws UsageError when `--rank` exceeds the module's output dim, no K reaches
 *   `--savings`, or `--max-error` cannot be met even at the largest useful K
 */
export async function chooseRank(source: ModuleSource, selection: RankSelection, options: ModuleCompressOptions): Promise<RankChoice> {
  const shape = shapeOf(source, options.slots)
  if ('rank' in selection) return {k: rankForModule(shape, selection.rank)}
  if ('savings' in selection) {
    const outBytes = DTYPES[options.dtype].bytes
    const k = rankForSavings(shape, selection.savings, options.inputBytesPerElement, outBytes)
    if (k < 1) {
      const best = savingsPercent(bytesBefore(shape, options.inputBytesPerElement), bytesAfter(shape, 1, outBytes))
      throw new UsageError('COMPRESS_SAVINGS_UNREACHABLE', `--savings ${selection.savings}: no K saves that much on module ${source.name} (K = 1 saves ${best.toFixed(2)}%)`)
    }
    return {k}
  }
  const {basis, projected} = await searchMaxError(source, shape, selection.maxError, options)
  return {k: projected.k, basis, projected}
}

/** The basis options of a module compression. */
function basisOptionsOf(options: ModuleCompressOptions) {
  return {engine: options.engine, normalize: options.normalize, method: options.method, tolerance: options.tolerance, chunk: options.chunk}
}

/**
 * Store module `source` at width `k` (handing the values to `options.sink`)
 * and measure the errors; `basis` is computed when not given.
 */
export async function storeModule(source: ModuleSource, k: number, options: ModuleCompressOptions, basis?: SharedBasis): Promise<CompressedModule> {
  const b = basis && basis.kMax >= k ? basis : await computeSharedBasis(source, {...basisOptionsOf(options), kMax: k})
  const projected = await projectModule(source, b, k, {engine: options.engine, dtype: options.dtype, chunk: options.chunk, sink: options.sink ? (s, c, bytes) => options.sink!.write(s, c, bytes) : undefined})
  return compressed(source, options, b, projected)
}

/**
 * Compress one module under `selection` (choose K, store, measure).
 * @throws UsageError as `chooseRank`
 */
export async function compressModule(source: ModuleSource, selection: RankSelection, options: ModuleCompressOptions): Promise<CompressedModule> {
  const choice = await chooseRank(source, selection, options)
  if (choice.projected) return compressed(source, options, choice.basis!, choice.projected)
  return storeModule(source, choice.k, options)
}

function compressed(source: ModuleSource, options: ModuleCompressOptions, basis: SharedBasis, projected: ProjectedModule): CompressedModule {
  const shape = shapeOf(source, options.slots)
  const k = projected.k
  return {
    name: source.name,
    kind: source.kind,
    in: source.in,
    out: source.out,
    R: source.R,
    rankSum: shape.rankSum,
    K: k,
    adapters: source.adapters,
    sharedB: projected.sharedB,
    errors: projected.errors,
    bytesBefore: bytesBefore(shape, options.inputBytesPerElement),
    bytesAfter: bytesAfter(shape, k, DTYPES[options.dtype].bytes),
    method: basis.method,
    converged: basis.converged,
  }
}

/**
 * The smallest K whose measured (stored-dtype) errors are all ≤ E: the
 * optimum errors of the basis give a first K; rounding to the output dtype
 * can add a little, so K grows until the measured errors agree.
 */
async function searchMaxError(source: ModuleSource, shape: ModuleShape, maxError: number, options: ModuleCompressOptions): Promise<{basis: SharedBasis; projected: ProjectedModule}> {
  const limit = maxUsefulRank(shape)
  const widen = (width: number) => computeSharedBasis(source, {...basisOptionsOf(options), kMax: Math.min(limit, width)})
  const project = (basis: SharedBasis, k: number) =>
    projectModule(source, basis, k, {engine: options.engine, dtype: options.dtype, chunk: options.chunk, sink: options.sink ? (s, c, b) => options.sink!.write(s, c, b) : undefined})
  let basis = await widen(MAX_ERROR_FIRST_WIDTH)
  let k = 1
  for (;;) {
    // The smallest k (from the current one) whose optimum errors meet E, widening the basis as needed.
    for (;;) {
      while (k <= basis.kMax && maxOf(basisErrors(basis, k)) > maxError) k++
      if (k <= basis.kMax) break
      if (basis.kMax >= limit) {
        k = limit
        break
      }
      basis = await widen(basis.kMax * 4)
    }
    await options.sink?.restart()
    const projected = await project(basis, k)
    const worst = maxOf(projected.errors)
    if (worst <= maxError) return {basis, projected}
    if (k >= limit) {
      throw new UsageError(
        'COMPRESS_MAX_ERROR_UNREACHABLE',
        `--max-error ${maxError} cannot be met on module ${source.name} when stored as ${options.dtype}: even K = ${k} (the module's full rank) leaves a max error of ${worst.toPrecision(3)}`,
        {suggestions: ['raise --max-error', 'store a wider --dtype (f32)']},
      )
    }
    k++
    if (k > basis.kMax) basis = await widen(basis.kMax * 2)
  }
}

/**
 * Dry runs at each K of `ranks` (each clamped to the module's useful rank):
 * bytes and the errors `--rank K` would measure, without storing anything.
 */
export async function sweepModule(source: ModuleSource, ranks: readonly number[], options: Omit<ModuleCompressOptions, 'sink'>): Promise<{points: SweepPoint[]; bytesBefore: number; method: 'dense' | 'iterative'; converged: boolean}> {
  const shape = shapeOf(source, options.slots)
  const limit = maxUsefulRank(shape)
  const ks = ranks.map((k) => Math.min(k, limit))
  const basis = await computeSharedBasis(source, {...basisOptionsOf(options), kMax: Math.max(...ks)})
  const points: SweepPoint[] = []
  for (const k of ks) {
    const {errors} = await projectModule(source, basis, k, {engine: options.engine, dtype: options.dtype, chunk: options.chunk})
    points.push({K: k, bytesAfter: bytesAfter(shape, k, DTYPES[options.dtype].bytes), errors})
  }
  return {points, bytesBefore: bytesBefore(shape, options.inputBytesPerElement), method: basis.method, converged: basis.converged}
}

export function maxOf(values: ArrayLike<number>): number {
  let m = 0
  for (let i = 0; i < values.length; i++) m = Math.max(m, values[i]!)
  return m
}

export function meanOf(values: ArrayLike<number>): number {
  let s = 0
  for (let i = 0; i < values.length; i++) s += values[i]!
  return values.length > 0 ? s / values.length : 0
}
