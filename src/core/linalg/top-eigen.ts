/**
 * The k largest eigenpairs of a large symmetric positive semi-definite matrix
 * G [n, n] (a Gram matrix), without a dense eigensolver on G: Chebyshev-
 * filtered subspace iteration (Zhou & Saad, "Chebyshev-filtered subspace
 * iteration", 2007) with Rayleigh–Ritz and deflation.
 *
 * Each iteration multiplies a block of b = k + p vectors by a Chebyshev
 * polynomial of G that damps the spectrum below the block's smallest Ritz
 * value (the products run in float32 on the matmul engine), then
 * orthonormalizes the block and solves the small b × b Rayleigh–Ritz problem
 * in float64.
 *
 * Dominant eigenvalues far above the rest (a subspace that all adapters
 * share) would swamp a float32 filter: leading Ritz pairs that have converged
 * and stand more than `FOLD_RATIO` above the block's bottom are locked and
 * deflated (G − X Λ Xᵀ), so the filter works on the remaining spectrum at
 * full resolution.
 *
 * G may be given as a matrix or as a Gram operator G = Mᵀ M (or M Mᵀ) with
 * products by M: the iteration then starts without forming G (two skinny
 * products per block instead of one square one) and forms it only when that
 * pays off: once the products spent reach the cost of forming G, or when a
 * deflation needs it. When the wanted pairs stand well above the rest, it
 * converges before G is ever formed.
 *
 * Stopping rule: every wanted Ritz pair (θ_j, x_j) has a residual
 * ‖G x_j − θ_j x_j‖ ≤ tolerance · max(θ_top, NOISE_FLOOR · θ_1), where θ_top is
 * the largest eigenvalue still active and θ_1 the largest overall (the floor
 * keeps float32 noise in an exactly rank-deficient G from blocking convergence).
 */
import {Rng} from '../random.js'
import type {MatMulEngine} from './matmul-engine.js'
import {orthonormalizeBlock} from './orthonormal-block.js'
import {symmetricEigen} from './symmetric-eigen.js'

/** Converged leading Ritz values more than this many times the block's bottom are locked and deflated. */
const FOLD_RATIO = 8
/** The filter degree is capped so that it amplifies the block's top by at most this factor relative to its bottom (float32 keeps ~7 digits). */
const MAX_AMPLIFICATION = 1e4
/** Residuals are measured against at least this share of the largest eigenvalue. */
const NOISE_FLOOR = 1e-5

/** A symmetric PSD matrix G [n, n] known through products, formed on demand. */
export interface GramOperator {
  readonly n: number
  /** G Y for Y [n, cols] (float32). */
  apply(y: Float32Array, cols: number): Promise<Float32Array>
  /** Flops of `apply` per column of Y. */
  readonly applyFlopsPerColumn: number
  /** G itself, [n, n] row-major float32. */
  matrix(): Promise<Float32Array>
  /** Flops of forming G. */
  readonly matrixFlops: number
}

export interface TopEigenOptions {
  engine: MatMulEngine
  /** Extra block columns beyond k (default max(8, ⌈k/2⌉)): more converge faster per iteration. */
  oversample?: number
  /** Relative residual tolerance (default 1e-6). */
  tolerance?: number
  /** Outer iterations before giving up (default 100). */
  maxIterations?: number
  /** Highest Chebyshev degree per iteration (default 16). */
  maxDegree?: number
  /** Seed of the random start block (default 0): results are deterministic. */
  seed?: number
  /** Called after each outer iteration. */
  onIteration?: (info: {iteration: number; locked: number; k: number}) => void
}

export interface TopEigenResult {
  /** The block's Ritz values, largest first (`columns` of them; the first k are the wanted ones). */
  values: Float64Array
  /** `[n, columns]` row-major float64, orthonormal columns, in the order of `values`. */
  vectors: Float64Array
  columns: number
  /** Whether the stopping rule was met (false: `maxIterations` ran out; the vectors are still orthonormal). */
  converged: boolean
  iterations: number
  /** Block products with G (filter steps and Rayleigh–Ritz steps). */
  applications: number
  /** Whether G was formed (always, when given as a matrix). */
  formed: boolean
}

/**
 * Top-k eigenpairs of the symmetric PSD matrix `g` (`[n, n]` row-major
 * float32, or a `GramOperator`). When the block would not be smaller than n,
 * the whole spectrum is computed densely instead.
 * @throws RangeError for k outside 1..n
 */
export async function topEigenpairs(matrixOrOperator: Float32Array | GramOperator, n: number, k: number, options: TopEigenOptions): Promise<TopEigenResult> {
  const operator = matrixOrOperator instanceof Float32Array ? undefined : matrixOrOperator
  if (matrixOrOperator instanceof Float32Array && matrixOrOperator.length !== n * n) throw new RangeError(`matrix has ${matrixOrOperator.length} elements, expected ${n}×${n}`)
  if (operator && operator.n !== n) throw new RangeError(`operator has order ${operator.n}, expected ${n}`)
  if (!Number.isSafeInteger(k) || k < 1 || k > n) throw new RangeError(`k must be in 1..${n} (got ${k})`)
  const {engine} = options
  const tolerance = options.tolerance ?? 1e-6
  const maxIterations = options.maxIterations ?? 100
  const maxDegree = options.maxDegree ?? 16
  const oversample = options.oversample ?? Math.max(8, Math.ceil(k / 2))
  const block = Math.min(n, k + oversample)
  let g: Float32Array | undefined = operator ? undefined : (matrixOrOperator as Float32Array)
  if (block >= n) {
    const {values, vectors} = symmetricEigen(Float64Array.from(g ?? (await operator!.matrix())), n)
    return {values, vectors, columns: n, converged: true, iterations: 0, applications: 0, formed: true}
  }
  /** Implicit products spent so far, in flops. */
  let spent = 0
  const form = async (): Promise<Float32Array> => (g ??= await operator!.matrix())

  let gd = g
  let locked: Float64Array = new Float64Array(0)
  let lockedValues: number[] = []
  let applications = 0
  const L = () => lockedValues.length

  /** (I − Xl Xlᵀ) Gd Y for a float64 block Y [n, c]. */
  const apply = async (y: Float64Array, c: number): Promise<Float64Array> => {
    applications++
    if (!gd && spent + c * operator!.applyFlopsPerColumn > operator!.matrixFlops) gd = await form()
    let product: Float32Array
    if (gd) {
      product = await engine.matmul(gd, [n, n], Float32Array.from(y), [n, c])
    } else {
      spent += c * operator!.applyFlopsPerColumn
      product = await operator!.apply(Float32Array.from(y), c)
    }
    const z = Float64Array.from(product)
    if (L() > 0) await projectOut(engine, locked, n, L(), z, c)
    return z
  }

  /** Rayleigh–Ritz on an orthonormal block: Ritz vectors, values (largest first) and residual norms. */
  const rayleighRitz = async (y: Float64Array, c: number): Promise<{x: Float64Array; values: Float64Array; residuals: Float64Array}> => {
    const z = await apply(y, c)
    const h = await engine.matmul(y, [n, c], z, [n, c], {transposeA: true})
    for (let i = 0; i < c; i++) for (let j = 0; j < i; j++) h[i * c + j] = h[j * c + i] = (h[i * c + j]! + h[j * c + i]!) / 2
    const {values, vectors} = symmetricEigen(h, c)
    const x = await engine.matmul(y, [n, c], vectors, [c, c])
    const gx = await engine.matmul(z, [n, c], vectors, [c, c])
    const residuals = new Float64Array(c)
    for (let j = 0; j < c; j++) {
      let s = 0
      for (let i = 0; i < n; i++) s += (gx[i * c + j]! - values[j]! * x[i * c + j]!) ** 2
      residuals[j] = Math.sqrt(s)
    }
    return {x, values, residuals}
  }

  const rng = new Rng(options.seed ?? 0, 'top-eigen', n, k)
  let width = block
  let state = await rayleighRitz(await orthonormalizeBlock(engine, rng.fillNormal(new Float64Array(n * width)), n, width), width)
  let largest = state.values[0]!
  let iteration = 0
  let converged = false
  for (; ; iteration++) {
    const wanted = k - L()
    const top = state.values[0]!
    largest = Math.max(largest, top)
    const threshold = tolerance * Math.max(top, NOISE_FLOOR * largest)
    converged = wanted <= 0 || state.residuals.subarray(0, wanted).every((r) => r <= threshold)
    if (converged || iteration >= maxIterations) break
    // Lock converged dominant pairs and deflate them out of G.
    const floorValue = Math.max(state.values[width - 1]!, NOISE_FLOOR * largest)
    let lock = 0
    while (lock < wanted && state.values[lock]! > FOLD_RATIO * floorValue && state.residuals[lock]! <= threshold) lock++
    if (lock > 0) {
      locked = appendColumns(locked, n, L(), state.x, width, lock)
      lockedValues = [...lockedValues, ...state.values.subarray(0, lock)]
      gd = await deflate(engine, await form(), n, locked, lockedValues)
      const keep = Math.min(n - L(), k - L() + oversample)
      state = {
        x: columnsOf(state.x, n, width, lock, keep),
        values: state.values.slice(lock, lock + keep),
        residuals: state.residuals.slice(lock, lock + keep),
      }
      width = keep
    }
    // Chebyshev filter damping [0, cut].
    const activeTop = state.values[0]!
    const cut = Math.max(state.values[width - 1]!, NOISE_FLOOR * largest, Number.MIN_VALUE)
    const xTop = Math.max(1, (2 * activeTop) / cut - 1)
    let degree = 1
    while (degree < maxDegree && Math.cosh((degree + 1) * Math.acosh(xTop)) <= MAX_AMPLIFICATION) degree++
    const half = cut / 2
    let y0: Float64Array = state.x
    let y1: Float64Array = await apply(y0, width)
    for (let i = 0; i < y1.length; i++) y1[i] = (y1[i]! - half * y0[i]!) / half
    for (let step = 2; step <= degree; step++) {
      const gy = await apply(y1, width)
      let scale = 0
      for (let i = 0; i < gy.length; i++) {
        gy[i] = (2 * (gy[i]! - half * y1[i]!)) / half - y0[i]!
        scale = Math.max(scale, Math.abs(gy[i]!))
      }
      if (scale > 0) {
        for (let i = 0; i < gy.length; i++) gy[i]! /= scale
        for (let i = 0; i < y1.length; i++) y1[i]! /= scale
      }
      y0 = y1
      y1 = gy
    }
    if (L() > 0) {
      await projectOut(engine, locked, n, L(), y1, width)
      await projectOut(engine, locked, n, L(), y1, width)
    }
    state = await rayleighRitz(await orthonormalizeBlock(engine, y1, n, width), width)
    options.onIteration?.({iteration: iteration + 1, locked: L(), k})
  }
  // Locked pairs first (largest first), then the active block.
  const columns = L() + width
  const vectors = new Float64Array(n * columns)
  for (let i = 0; i < n; i++) {
    for (let j = 0; j < L(); j++) vectors[i * columns + j] = locked[i * L() + j]!
    for (let j = 0; j < width; j++) vectors[i * columns + L() + j] = state.x[i * width + j]!
  }
  const values = Float64Array.from([...lockedValues, ...state.values])
  return {values, vectors, columns, converged, iterations: iteration, applications, formed: g !== undefined}
}

/** z ← z − X (Xᵀ z) for orthonormal X [n, l]. */
async function projectOut(engine: MatMulEngine, x: Float64Array, n: number, l: number, z: Float64Array, c: number): Promise<void> {
  const coefficients = await engine.matmul(x, [n, l], z, [n, c], {transposeA: true})
  const along = await engine.matmul(x, [n, l], coefficients, [l, c])
  for (let i = 0; i < z.length; i++) z[i]! -= along[i]!
}

/** G − X diag(λ) Xᵀ, formed in float64 and stored as float32. */
async function deflate(engine: MatMulEngine, g: Float32Array, n: number, x: Float64Array, values: readonly number[]): Promise<Float32Array> {
  const l = values.length
  const scaled = new Float64Array(x.length)
  for (let i = 0; i < n; i++) for (let j = 0; j < l; j++) scaled[i * l + j] = x[i * l + j]! * values[j]!
  const low = await engine.matmul(scaled, [n, l], x, [n, l], {transposeB: true})
  const out = new Float32Array(n * n)
  for (let i = 0; i < out.length; i++) out[i] = g[i]! - low[i]!
  return out
}

function appendColumns(a: Float64Array, n: number, aCols: number, b: Float64Array, bCols: number, take: number): Float64Array {
  const cols = aCols + take
  const out = new Float64Array(n * cols)
  for (let i = 0; i < n; i++) {
    for (let j = 0; j < aCols; j++) out[i * cols + j] = a[i * aCols + j]!
    for (let j = 0; j < take; j++) out[i * cols + aCols + j] = b[i * bCols + j]!
  }
  return out
}

function columnsOf(a: Float64Array, n: number, cols: number, from: number, count: number): Float64Array {
  const out = new Float64Array(n * count)
  for (let i = 0; i < n; i++) for (let j = 0; j < count; j++) out[i * count + j] = a[i * cols + from + j]!
  return out
}
