/**
 * An independent float64 reference for the compression tests: the left
 * singular vectors of an explicitly formed matrix by one-sided Jacobi
 * (Hestenes) rotations, and explicit products. Written plainly, sharing no
 * code with src/core/linalg, and only for small shapes.
 */

/** `a [m, k] @ b [k, n]` in float64, the textbook triple loop. */
export function product(a: ArrayLike<number>, m: number, k: number, b: ArrayLike<number>, n: number): Float64Array {
  const c = new Float64Array(m * n)
  for (let i = 0; i < m; i++) for (let j = 0; j < n; j++) {
    let s = 0
    for (let p = 0; p < k; p++) s += a[i * k + p]! * b[p * n + j]!
    c[i * n + j] = s
  }
  return c
}

/**
 * Left singular vectors and values of `x [rows, cols]`, largest first, by
 * one-sided Jacobi on M = xᵀ: rotate pairs of M's columns until every pair
 * is orthogonal, accumulating the rotations in V (rows × rows); then x = V Σ Wᵀ
 * and V's columns are x's left singular vectors.
 * @returns `u` [rows, rows] row-major (columns with σ ≈ 0 last) and `sigma`
 */
export function leftSingularVectors(x: ArrayLike<number>, rows: number, cols: number): {u: Float64Array; sigma: number[]} {
  // m[j][i] = x[i][j], stored column-major per x-row: column i of M is row i of x.
  const m = Float64Array.from(x as ArrayLike<number>)
  const v = new Float64Array(rows * rows)
  for (let i = 0; i < rows; i++) v[i * rows + i] = 1
  let total = 0
  for (let i = 0; i < m.length; i++) total += m[i]! * m[i]!
  const negligible = 1e-28 * total
  for (let sweep = 0; sweep < 60; sweep++) {
    let rotated = false
    for (let p = 0; p < rows - 1; p++) {
      for (let q = p + 1; q < rows; q++) {
        let alpha = 0
        let beta = 0
        let gamma = 0
        for (let j = 0; j < cols; j++) {
          const a = m[p * cols + j]!
          const b = m[q * cols + j]!
          alpha += a * a
          beta += b * b
          gamma += a * b
        }
        if (alpha <= negligible || beta <= negligible || Math.abs(gamma) <= 1e-15 * Math.sqrt(alpha * beta)) continue
        rotated = true
        const zeta = (beta - alpha) / (2 * gamma)
        const t = (zeta >= 0 ? 1 : -1) / (Math.abs(zeta) + Math.sqrt(1 + zeta * zeta))
        const c = 1 / Math.sqrt(1 + t * t)
        const s = c * t
        for (let j = 0; j < cols; j++) {
          const a = m[p * cols + j]!
          const b = m[q * cols + j]!
          m[p * cols + j] = c * a - s * b
          m[q * cols + j] = s * a + c * b
        }
        for (let i = 0; i < rows; i++) {
          const a = v[i * rows + p]!
          const b = v[i * rows + q]!
          v[i * rows + p] = c * a - s * b
          v[i * rows + q] = s * a + c * b
        }
      }
    }
    if (!rotated) break
  }
  const norms = Array.from({length: rows}, (_, p) => {
    let s = 0
    for (let j = 0; j < cols; j++) s += m[p * cols + j]! ** 2
    return Math.sqrt(s)
  })
  const order = norms.map((n, p) => [n, p] as const).sort((a, b) => b[0] - a[0])
  const u = new Float64Array(rows * rows)
  order.forEach(([, p], k) => {
    for (let i = 0; i < rows; i++) u[i * rows + k] = v[i * rows + p]!
  })
  return {u, sigma: order.map(([n]) => n)}
}

/** ‖(I − U_k U_kᵀ) m‖_F / ‖m‖_F for `m [rows, cols]` and the first k columns of `u [rows, uCols]`. */
export function projectionError(m: ArrayLike<number>, rows: number, cols: number, u: ArrayLike<number>, uCols: number, k: number): number {
  let residual = 0
  let total = 0
  for (let j = 0; j < cols; j++) {
    const v = Array.from({length: rows}, (_, i) => m[i * cols + j]!)
    const coefficients = Array.from({length: k}, (_, c) => v.reduce((s, x, i) => s + x * u[i * uCols + c]!, 0))
    for (let i = 0; i < rows; i++) {
      let proj = 0
      for (let c = 0; c < k; c++) proj += u[i * uCols + c]! * coefficients[c]!
      residual += (v[i]! - proj) ** 2
      total += v[i]! ** 2
    }
  }
  return total > 0 ? Math.sqrt(residual / total) : 0
}

/** ‖a − b‖_F / ‖a‖_F. */
export function relativeDifference(a: ArrayLike<number>, b: ArrayLike<number>): number {
  let d = 0
  let n = 0
  for (let i = 0; i < a.length; i++) {
    d += (a[i]! - b[i]!) ** 2
    n += a[i]! ** 2
  }
  return n > 0 ? Math.sqrt(d / n) : Math.sqrt(d)
}
