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
 * Left singular vectors and values of `x [rows, cols]`, largest first:
 * rotate pairs of columns until every pair is orthogonal, then the non-zero
 * columns are σ_j u_j.
 * @returns `u` [rows, count] row-major and `sigma` (count = the numerical rank)
 */
export function leftSingularVectors(x: ArrayLike<number>, rows: number, cols: number): {u: Float64Array; sigma: number[]} {
  const w = Float64Array.from(x as ArrayLike<number>)
  const col = (j: number) => Array.from({length: rows}, (_, i) => w[i * cols + j]!)
  for (let sweep = 0; sweep < 100; sweep++) {
    let rotated = false
    for (let p = 0; p < cols - 1; p++) {
      for (let q = p + 1; q < cols; q++) {
        let alpha = 0
        let beta = 0
        let gamma = 0
        for (let i = 0; i < rows; i++) {
          const a = w[i * cols + p]!
          const b = w[i * cols + q]!
          alpha += a * a
          beta += b * b
          gamma += a * b
        }
        if (Math.abs(gamma) <= 1e-15 * Math.sqrt(alpha * beta) || gamma === 0) continue
        rotated = true
        const zeta = (beta - alpha) / (2 * gamma)
        const t = Math.sign(zeta || 1) / (Math.abs(zeta) + Math.sqrt(1 + zeta * zeta))
        const c = 1 / Math.sqrt(1 + t * t)
        const s = c * t
        for (let i = 0; i < rows; i++) {
          const a = w[i * cols + p]!
          const b = w[i * cols + q]!
          w[i * cols + p] = c * a - s * b
          w[i * cols + q] = s * a + c * b
        }
      }
    }
    if (!rotated) break
  }
  const norms = Array.from({length: cols}, (_, j) => Math.hypot(...col(j)))
  const largest = Math.max(...norms)
  const order = norms.map((n, j) => [n, j] as const).filter(([n]) => n > 1e-12 * largest).sort((a, b) => b[0] - a[0])
  const u = new Float64Array(rows * order.length)
  order.forEach(([n, j], k) => {
    for (let i = 0; i < rows; i++) u[i * order.length + k] = w[i * cols + j]! / n
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
