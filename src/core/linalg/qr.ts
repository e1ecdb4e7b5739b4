/**
 * Thin QR by Householder reflections, in float64: `a = Q R` for a `[m, n]`
 * matrix with m ≥ n, Q `[m, n]` with orthonormal columns, R `[n, n]` upper
 * triangular with a non-negative diagonal (so the factorization is unique for
 * full-rank `a`).
 *
 * Householder QR is backward stable and needs no full rank: dependent
 * columns give zeros on R's diagonal and Q stays orthonormal to working
 * precision, and the span of Q's first j columns contains that of a's first j
 * columns (the nesting the shared-basis code relies on).
 */

export interface ThinQr {
  /** `[m, n]` row-major, orthonormal columns; absent when only R was asked for. */
  q?: Float64Array
  /** `[n, n]` row-major, upper triangular, diagonal ≥ 0. */
  r: Float64Array
}

/**
 * Thin QR of a row-major `[m, n]` matrix (m ≥ n).
 * @param options.wantQ also form Q (default true); R alone costs about half
 * @throws RangeError for shapes that do not fit
 */
export function householderQr(a: ArrayLike<number>, m: number, n: number, options: {wantQ?: boolean} = {}): ThinQr {
  if (a.length !== m * n) throw new RangeError(`matrix has ${a.length} elements, expected ${m}×${n}`)
  if (m < n) throw new RangeError(`thin QR needs at least as many rows as columns (got ${m}×${n})`)
  // Column-major working copy: column j is w[j*m .. j*m+m-1], so reflections stream through memory.
  const w = new Float64Array(m * n)
  for (let i = 0; i < m; i++) for (let j = 0; j < n; j++) w[j * m + i] = a[i * n + j]!
  // Reflector j: H_j = I − β_j v_j v_jᵀ with v_j[j] = 1, v_j[i>j] stored below the diagonal of w.
  const beta = new Float64Array(n)
  const diag = new Float64Array(n)
  for (let j = 0; j < n; j++) {
    const cj = j * m
    let scale = 0
    for (let i = j; i < m; i++) scale = Math.max(scale, Math.abs(w[cj + i]!))
    if (scale === 0) {
      beta[j] = 0
      diag[j] = 0
      continue
    }
    let norm2 = 0
    for (let i = j; i < m; i++) norm2 += (w[cj + i]! / scale) ** 2
    const norm = scale * Math.sqrt(norm2)
    const x0 = w[cj + j]!
    const alpha = x0 > 0 ? -norm : norm
    const v0 = x0 - alpha
    // v = (x − alpha e_j) / v0, so v[j] = 1; β = −v0 / alpha.
    for (let i = j + 1; i < m; i++) w[cj + i]! /= v0
    beta[j] = -v0 / alpha
    diag[j] = alpha
    for (let c = j + 1; c < n; c++) {
      const cc = c * m
      let dot = w[cc + j]!
      for (let i = j + 1; i < m; i++) dot += w[cj + i]! * w[cc + i]!
      dot *= beta[j]!
      w[cc + j]! -= dot
      for (let i = j + 1; i < m; i++) w[cc + i]! -= dot * w[cj + i]!
    }
  }
  // R, with the signs flipped so that its diagonal is non-negative.
  const sign = new Float64Array(n)
  for (let j = 0; j < n; j++) sign[j] = diag[j]! < 0 ? -1 : 1
  const r = new Float64Array(n * n)
  for (let i = 0; i < n; i++) {
    r[i * n + i] = Math.abs(diag[i]!)
    for (let j = i + 1; j < n; j++) r[i * n + j] = sign[i]! * w[j * m + i]!
  }
  if (options.wantQ === false) return {r}
  // Q = H_0 H_1 … H_{n−1} applied to the first n columns of I, column-major, last reflector first.
  const q = new Float64Array(m * n)
  for (let j = 0; j < n; j++) q[j * m + j] = 1
  for (let j = n - 1; j >= 0; j--) {
    const b = beta[j]!
    if (b === 0) continue
    const cj = j * m
    for (let c = j; c < n; c++) {
      const cc = c * m
      let dot = q[cc + j]!
      for (let i = j + 1; i < m; i++) dot += w[cj + i]! * q[cc + i]!
      dot *= b
      q[cc + j]! -= dot
      for (let i = j + 1; i < m; i++) q[cc + i]! -= dot * w[cj + i]!
    }
  }
  const out = new Float64Array(m * n)
  for (let j = 0; j < n; j++) {
    const s = sign[j]!
    for (let i = 0; i < m; i++) out[i * n + j] = s * q[j * m + i]!
  }
  return {q: out, r}
}
