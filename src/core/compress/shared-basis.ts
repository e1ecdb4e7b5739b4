/**
 * The optimal shared basis of one module: U [out, K] with orthonormal columns
 * minimising Σ_i ‖ΔW_i − U Uᵀ ΔW_i‖²_F over the module's adapters
 * (ΔW_i = s_i B_i A_i), i.e. the top-K left singular vectors of
 * [ΔW_1 … ΔW_N], computed without forming any out × in matrix.
 *
 * For any F_i with F_iᵀ F_i = A_i A_iᵀ (the R of a thin QR A_iᵀ = Q_i R_i is
 * one), C_i = s_i B_i F_iᵀ [out, r_i] has
 * C_i C_iᵀ = ΔW_i ΔW_iᵀ, so [C_1 … C_N] (out × Σr) has the same left singular
 * vectors and values as [ΔW_1 … ΔW_N], and for any orthonormal U
 *   ‖(I − U Uᵀ) ΔW_i‖_F = ‖(I − U Uᵀ) C_i‖_F,   ‖ΔW_i‖_F = ‖C_i‖_F.
 * F_i comes from the Cholesky factor of the r×r Gram A_i A_iᵀ (computed in
 * float64 on the matmul engine for a whole chunk of adapters at once:
 * 0.04–0.3 s per module of 256 rank-16 adapters at in = 2048 here, against
 * 0.6–0.8 s for a Householder QR of each A_iᵀ in TypeScript), or from its
 * eigen-decomposition when A_i is rank-deficient.
 *
 * U is taken from the smaller Gram matrix, C Cᵀ [out, out] or Cᵀ C [Σr, Σr]:
 * densely (all eigenpairs, float64) when it is small or K is a large share of
 * it, otherwise by Chebyshev-filtered subspace iteration for the top K
 * (`linalg/top-eigen.ts`, float32 products). A final Rayleigh–Ritz step on C
 * itself in float64 gives the returned basis and, per adapter and per k ≤ K,
 * the share of ‖C_i‖² that the first k columns capture.
 */
import {choleskyUpper} from '../linalg/dense.js'
import type {MatMulEngine} from '../linalg/matmul-engine.js'
import {householderQr} from '../linalg/qr.js'
import {symmetricEigen} from '../linalg/symmetric-eigen.js'
import {type GramOperator, topEigenpairs} from '../linalg/top-eigen.js'
import {type ModuleSource, readFloat64} from './module-source.js'

/** Gram matrices up to this order are always decomposed densely (≈ 0.2 s in TypeScript). */
export const DENSE_MAX_ORDER = 256
/** Bytes of float64 adapter data handled per chunk. */
export const CHUNK_BYTES = 32 * 1024 * 1024
/** C (Σr × out, float64) is kept between passes up to this size; larger modules recompute it by chunks. */
export const ROWS_CACHE_BYTES = 512 * 1024 * 1024

export type BasisMethod = 'auto' | 'dense' | 'iterative'

export interface SharedBasisOptions {
  engine: MatMulEngine
  /** Columns wanted (clamped to min(out, Σr)). */
  kMax: number
  /** Scale every C_i to unit norm first, so every adapter weighs the same. */
  normalize?: boolean
  /** Force the dense or the iterative eigensolver (default: by size). */
  method?: BasisMethod
  /** Residual tolerance of the iterative solver. */
  tolerance?: number
  seed?: number
  /** Adapters per chunk (default: from CHUNK_BYTES). */
  chunk?: number
}

export interface SharedBasis {
  readonly module: string
  readonly out: number
  readonly in: number
  /** Σ r_i over the module's adapters. */
  readonly rankSum: number
  /** Columns of `u`. */
  readonly kMax: number
  /** `[out, kMax]` row-major float64, orthonormal columns, most important first. */
  readonly u: Float64Array
  /** Eigenvalues of the (weighted) Gram for those columns, largest first. */
  readonly values: Float64Array
  /** ‖ΔW_i‖²_F per adapter (unweighted), in `source.adapters` order. */
  readonly deltaNorms2: Float64Array
  /** `[N, kMax + 1]`: the share of ‖C_i‖² captured by the first k columns (k = 0..kMax). */
  readonly captured: Float64Array
  readonly method: 'dense' | 'iterative'
  /** False when the iterative solver stopped at its iteration limit (the basis is then close to, not at, the optimum). */
  readonly converged: boolean
}

/** Per-adapter relative errors ‖(I − U_k U_kᵀ) ΔW_i‖ / ‖ΔW_i‖ of the basis' first k columns, in float64 (0 for a zero ΔW_i). */
export function basisErrors(basis: SharedBasis, k: number): Float64Array {
  if (!Number.isSafeInteger(k) || k < 0 || k > basis.kMax) throw new RangeError(`k must be in 0..${basis.kMax} (got ${k})`)
  const n = basis.deltaNorms2.length
  const out = new Float64Array(n)
  for (let i = 0; i < n; i++) out[i] = Math.sqrt(Math.max(0, 1 - basis.captured[i * (basis.kMax + 1) + k]!))
  return out
}

/** Adapters per chunk for a module of these dims. */
export function chunkSize(source: Pick<ModuleSource, 'in' | 'out' | 'R'>, requested?: number): number {
  return Math.max(1, requested ?? Math.floor(CHUNK_BYTES / ((source.in + source.out) * source.R * 8)))
}

/**
 * The top-kMax shared basis of a module.
 * @throws RangeError for kMax < 1
 */
export async function computeSharedBasis(source: ModuleSource, options: SharedBasisOptions): Promise<SharedBasis> {
  const {engine} = options
  const {out, R} = source
  const adapters = source.adapters
  const N = adapters.length
  const rankSum = adapters.reduce((s, a) => s + a.r, 0)
  const order = Math.min(out, rankSum)
  if (!Number.isSafeInteger(options.kMax) || options.kMax < 1) throw new RangeError(`kMax must be a positive integer (got ${options.kMax})`)
  const kMax = Math.min(options.kMax, order)
  const outSide = out <= rankSum
  const block = kMax + Math.max(8, Math.ceil(kMax / 2))
  const method = options.method === 'dense' || (options.method !== 'iterative' && (order <= DENSE_MAX_ORDER || 3 * block >= order)) ? 'dense' : 'iterative'
  const chunk = chunkSize(source, options.chunk)
  const rowStart = new Int32Array(N + 1)
  for (let i = 0; i < N; i++) rowStart[i + 1] = rowStart[i]! + adapters[i]!.r

  // Pass 1: factors F_i, norms, weights, and the Gram matrix (or all of C when Cᵀ C is the smaller side).
  const factors = new Float64Array(N * R * R)
  const deltaNorms2 = new Float64Array(N)
  const weights = new Float64Array(N)
  // All of C is kept when Cᵀ C is the smaller side (it is then at most out × out) or when it fits the cache.
  const keepRows = !outSide || rankSum * out * 8 <= ROWS_CACHE_BYTES
  const allRows = keepRows ? new Float64Array(rankSum * out) : undefined
  const gram = outSide && !keepRows ? new Float64Array(out * out) : undefined
  for (let start = 0; start < N; start += chunk) {
    const count = Math.min(chunk, N - start)
    const data = await readFloat64(source, start, count)
    const m = await engine.matmul(data.a, [count, R, source.in], data.a, [count, R, source.in], {transposeB: true})
    for (let t = 0; t < count; t++) {
      const r = adapters[start + t]!.r
      const f = factorOfGram(m.subarray(t * R * R, (t + 1) * R * R), R, r)
      factors.set(f, (start + t) * R * R)
    }
    const rows = await scaledRows(engine, source, factors, data.b, start, count, rowStart)
    for (let t = 0; t < count; t++) {
      const i = start + t
      const norm2 = sumOfSquaresRange(rows, (rowStart[i]! - rowStart[start]!) * out, (rowStart[i + 1]! - rowStart[start]!) * out)
      deltaNorms2[i] = norm2
      weights[i] = options.normalize ? (norm2 > 0 ? 1 / Math.sqrt(norm2) : 0) : 1
      if (options.normalize) scaleRange(rows, (rowStart[i]! - rowStart[start]!) * out, (rowStart[i + 1]! - rowStart[start]!) * out, weights[i]!)
    }
    if (allRows) {
      allRows.set(rows, rowStart[start]! * out)
    } else {
      const chunkRows = rowStart[start + count]! - rowStart[start]!
      const g = method === 'dense' ? await gramOf(engine, rows, chunkRows, out, 'columns') : await gramOperator(engine, rows, chunkRows, out, 'columns').matrix()
      for (let i = 0; i < gram!.length; i++) gram![i]! += g[i]!
    }
  }

  // The eigenproblem on the smaller side, then a starting block of left vectors [out, width].
  let start: Float64Array
  let width: number
  let converged = true
  const side = outSide ? 'columns' : 'rows'
  const problem: Float64Array | GramOperator =
    gram ?? (method === 'dense' ? await gramOf(engine, allRows!, rankSum, out, side) : gramOperator(engine, allRows!, rankSum, out, side))
  const basis = await eigenBlock(engine, problem, order, kMax, method, options)
  converged = basis.converged
  width = basis.columns
  if (outSide) {
    start = basis.vectors
  } else {
    // Left vectors C V (in order), orthonormalized with their nesting kept.
    const left = await engine.matmul(allRows!, [rankSum, out], basis.vectors, [rankSum, width], {transposeA: true})
    start = householderQr(left, out, width).q!
  }

  // Rayleigh–Ritz on C in float64: Y = Cᵀ U (one row per adapter rank-row), H = Yᵀ Y.
  const y = allRows ? await engine.matmul(allRows, [rankSum, out], start, [out, width]) : new Float64Array(rankSum * width)
  for (let s0 = 0; !allRows && s0 < N; s0 += chunk) {
    const count = Math.min(chunk, N - s0)
    const chunkRows = rowStart[s0 + count]! - rowStart[s0]!
    const data = await readFloat64(source, s0, count)
    const rows = await scaledRows(engine, source, factors, data.b, s0, count, rowStart)
    for (let t = 0; t < count; t++) {
      const i = s0 + t
      if (weights[i] !== 1) scaleRange(rows, (rowStart[i]! - rowStart[s0]!) * out, (rowStart[i + 1]! - rowStart[s0]!) * out, weights[i]!)
    }
    y.set(await engine.matmul(rows, [chunkRows, out], start, [out, width]), rowStart[s0]! * width)
  }
  const h = await engine.matmul(y, [rankSum, width], y, [rankSum, width], {transposeA: true})
  const rr = symmetricEigen(h, width)
  const z = firstColumns(rr.vectors, width, width, kMax)
  const u = await engine.matmul(start, [out, width], z, [width, kMax])
  const yk = await engine.matmul(y, [rankSum, width], z, [width, kMax])

  // Captured shares per adapter and k.
  const captured = new Float64Array(N * (kMax + 1))
  for (let i = 0; i < N; i++) {
    const base = i * (kMax + 1)
    const norm2 = options.normalize ? (deltaNorms2[i]! > 0 ? 1 : 0) : deltaNorms2[i]!
    if (!(norm2 > 0)) {
      captured.fill(1, base, base + kMax + 1)
      continue
    }
    let sum = 0
    for (let k = 1; k <= kMax; k++) {
      for (let row = rowStart[i]!; row < rowStart[i + 1]!; row++) sum += yk[row * kMax + k - 1]! ** 2
      captured[base + k] = Math.min(1, sum / norm2)
    }
  }
  return {module: source.name, out, in: source.in, rankSum, kMax, u, values: rr.values.slice(0, kMax), deltaNorms2, captured, method, converged}
}

/** The float64 Gram matrix of `rows [n, out]`: of its columns (`rowsᵀ rows`, [out, out]) or of its rows (`rows rowsᵀ`, [n, n]). */
async function gramOf(engine: MatMulEngine, rows: Float64Array, n: number, out: number, of: 'columns' | 'rows'): Promise<Float64Array> {
  return engine.matmul(rows, [n, out], rows, [n, out], of === 'columns' ? {transposeA: true} : {transposeB: true})
}

/**
 * The Gram matrix of `rows [n, out]` (of its columns or of its rows) as a
 * float32 operator: products by `rows` (never transposed: the skinny blocks
 * are), the matrix itself formed only if the eigensolver asks for it.
 */
function gramOperator(engine: MatMulEngine, rows: Float64Array, n: number, out: number, of: 'columns' | 'rows'): GramOperator {
  const r32 = Float32Array.from(rows)
  const order = of === 'columns' ? out : n
  return {
    n: order,
    applyFlopsPerColumn: 4 * n * out,
    matrixFlops: 2 * order * order * (of === 'columns' ? n : out),
    async apply(y, cols) {
      if (of === 'columns') {
        // rowsᵀ (rows Y) = ((rows Y)ᵀ rows)ᵀ
        const inner = await engine.matmul(r32, [n, out], y, [out, cols])
        return transpose32(await engine.matmul(transpose32(inner, n, cols), [cols, n], r32, [n, out]), cols, out)
      }
      // rows (rowsᵀ Y) = rows (Yᵀ rows)ᵀ
      const inner = await engine.matmul(transpose32(y, n, cols), [cols, n], r32, [n, out])
      return engine.matmul(r32, [n, out], transpose32(inner, cols, out), [out, cols])
    },
    matrix: () => engine.matmul(r32, [n, out], r32, [n, out], of === 'columns' ? {transposeA: true} : {transposeB: true}),
  }
}

/** Transpose of a small float32 `[rows, cols]` block. */
function transpose32(a: Float32Array, rows: number, cols: number): Float32Array {
  const t = new Float32Array(rows * cols)
  for (let i = 0; i < rows; i++) for (let j = 0; j < cols; j++) t[j * rows + i] = a[i * cols + j]!
  return t
}

/** Eigenvectors of a symmetric PSD Gram [n, n]: all (dense) or the top block (iterative). */
async function eigenBlock(
  engine: MatMulEngine,
  gram: Float64Array | GramOperator,
  n: number,
  kMax: number,
  method: 'dense' | 'iterative',
  options: SharedBasisOptions,
): Promise<{vectors: Float64Array; columns: number; converged: boolean}> {
  if (method === 'dense') {
    // Exact eigenvectors: the first kMax are the basis (Rayleigh–Ritz within them changes nothing).
    const {vectors} = symmetricEigen(gram as Float64Array, n)
    return {vectors: firstColumns(vectors, n, n, kMax), columns: kMax, converged: true}
  }
  const result = await topEigenpairs(gram instanceof Float64Array ? Float32Array.from(gram) : gram, n, kMax, {engine, tolerance: options.tolerance, seed: options.seed})
  return {vectors: result.vectors, columns: result.columns, converged: result.converged}
}

/**
 * C_iᵀ rows for a chunk: s_i F_i B_iᵀ, r_i rows of length out per adapter,
 * compacted (padding rows dropped) → `[Σ r_i, out]` float64.
 */
async function scaledRows(
  engine: MatMulEngine,
  source: ModuleSource,
  factors: Float64Array,
  b: Float64Array,
  start: number,
  count: number,
  rowStart: Int32Array,
): Promise<Float64Array> {
  const {R, out} = source
  const f = factors.slice(start * R * R, (start + count) * R * R)
  for (let t = 0; t < count; t++) {
    const s = source.adapters[start + t]!.scaling
    for (let j = t * R * R; j < (t + 1) * R * R; j++) f[j]! *= s
  }
  const padded = await engine.matmul(f, [count, R, R], b, [count, out, R], {transposeB: true})
  if (rowStart[start + count]! - rowStart[start]! === count * R) return padded // every adapter has rank R: no padding rows
  const rows = new Float64Array((rowStart[start + count]! - rowStart[start]!) * out)
  for (let t = 0; t < count; t++) {
    const i = start + t
    rows.set(padded.subarray(t * R * out, (t * R + source.adapters[i]!.r) * out), (rowStart[i]! - rowStart[start]!) * out)
  }
  return rows
}

/**
 * An r×r factor F with Fᵀ F = the leading r×r block of the padded Gram `m` [R, R]
 * (upper-triangular Cholesky factor; for a singular Gram, Λ^{1/2} Vᵀ from its
 * eigen-decomposition), returned padded to [R, R].
 */
function factorOfGram(m: Float64Array, R: number, r: number): Float64Array {
  const g = new Float64Array(r * r)
  for (let i = 0; i < r; i++) for (let j = 0; j < r; j++) g[i * r + j] = m[i * R + j]!
  let f = choleskyUpper(g, r)
  if (!f) {
    const {values, vectors} = symmetricEigen(g, r)
    f = new Float64Array(r * r)
    for (let i = 0; i < r; i++) {
      const s = Math.sqrt(Math.max(0, values[i]!))
      for (let j = 0; j < r; j++) f[i * r + j] = s * vectors[j * r + i]!
    }
  }
  const padded = new Float64Array(R * R)
  for (let i = 0; i < r; i++) for (let j = 0; j < r; j++) padded[i * R + j] = f[i * r + j]!
  return padded
}

function firstColumns(a: Float64Array, rows: number, cols: number, count: number): Float64Array {
  if (count === cols) return a
  const out = new Float64Array(rows * count)
  for (let i = 0; i < rows; i++) for (let j = 0; j < count; j++) out[i * count + j] = a[i * cols + j]!
  return out
}

function sumOfSquaresRange(a: Float64Array, begin: number, end: number): number {
  let s = 0
  for (let i = begin; i < end; i++) s += a[i]! * a[i]!
  return s
}

function scaleRange(a: Float64Array, begin: number, end: number, factor: number): void {
  for (let i = begin; i < end; i++) a[i]! *= factor
}
