/**
 * All eigenvalues and eigenvectors of a small dense symmetric matrix, in
 * float64: Householder reduction to tridiagonal form, then the implicit QL
 * algorithm with Wilkinson shifts (EISPACK tred2/tql2, as in JAMA, public
 * domain). About 9n³ flops: for the Rayleigh–Ritz problems of the iterative
 * solver (n ≲ 200) and whole Gram matrices up to a few hundred rows.
 */

export interface SymmetricEigen {
  /** Eigenvalues, largest first. */
  values: Float64Array
  /** `[n, n]` row-major; column j is the unit eigenvector of values[j]. */
  vectors: Float64Array
}

/** Most QL sweeps one eigenvalue may take before the input is declared broken (NaN, Inf). */
const MAX_QL_ITERATIONS_PER_VALUE = 60

/**
 * Eigen-decomposition of a symmetric `[n, n]` row-major matrix (its lower
 * triangle is read).
 * @throws RangeError for a wrong size or a matrix with non-finite entries
 */
export function symmetricEigen(a: ArrayLike<number>, n: number): SymmetricEigen {
  if (a.length !== n * n) throw new RangeError(`matrix has ${a.length} elements, expected ${n}×${n}`)
  for (let i = 0; i < a.length; i++) if (!Number.isFinite(a[i]!)) throw new RangeError('matrix has a non-finite entry')
  if (n === 0) return {values: new Float64Array(0), vectors: new Float64Array(0)}
  // v[i][j] as v[i*n + j]
  const v = Float64Array.from(a as ArrayLike<number>)
  const d = new Float64Array(n)
  const e = new Float64Array(n)
  tred2(n, v, d, e)
  // tql2 rotates columns of V; work on its transpose so each rotation touches two contiguous rows.
  const z = new Float64Array(n * n)
  for (let i = 0; i < n; i++) for (let j = 0; j < n; j++) z[j * n + i] = v[i * n + j]!
  tql2(n, z, d, e)
  const order = [...d.keys()].sort((x, y) => d[y]! - d[x]!)
  const values = new Float64Array(n)
  const vectors = new Float64Array(n * n)
  order.forEach((src, dst) => {
    values[dst] = d[src]!
    for (let i = 0; i < n; i++) vectors[i * n + dst] = z[src * n + i]!
  })
  return {values, vectors}
}

function tred2(n: number, v: Float64Array, d: Float64Array, e: Float64Array): void {
  for (let j = 0; j < n; j++) d[j] = v[(n - 1) * n + j]!
  for (let i = n - 1; i > 0; i--) {
    let scale = 0
    let h = 0
    for (let k = 0; k < i; k++) scale += Math.abs(d[k]!)
    if (scale === 0) {
      e[i] = d[i - 1]!
      for (let j = 0; j < i; j++) {
        d[j] = v[(i - 1) * n + j]!
        v[i * n + j] = 0
        v[j * n + i] = 0
      }
    } else {
      for (let k = 0; k < i; k++) {
        d[k]! /= scale
        h += d[k]! * d[k]!
      }
      let f = d[i - 1]!
      let g = Math.sqrt(h)
      if (f > 0) g = -g
      e[i] = scale * g
      h -= f * g
      d[i - 1] = f - g
      for (let j = 0; j < i; j++) e[j] = 0
      for (let j = 0; j < i; j++) {
        f = d[j]!
        v[j * n + i] = f
        g = e[j]! + v[j * n + j]! * f
        for (let k = j + 1; k <= i - 1; k++) {
          g += v[k * n + j]! * d[k]!
          e[k]! += v[k * n + j]! * f
        }
        e[j] = g
      }
      f = 0
      for (let j = 0; j < i; j++) {
        e[j]! /= h
        f += e[j]! * d[j]!
      }
      const hh = f / (h + h)
      for (let j = 0; j < i; j++) e[j]! -= hh * d[j]!
      for (let j = 0; j < i; j++) {
        f = d[j]!
        g = e[j]!
        for (let k = j; k <= i - 1; k++) v[k * n + j]! -= f * e[k]! + g * d[k]!
        d[j] = v[(i - 1) * n + j]!
        v[i * n + j] = 0
      }
    }
    d[i] = h
  }
  for (let i = 0; i < n - 1; i++) {
    v[(n - 1) * n + i] = v[i * n + i]!
    v[i * n + i] = 1
    const h = d[i + 1]!
    if (h !== 0) {
      for (let k = 0; k <= i; k++) d[k] = v[k * n + i + 1]! / h
      for (let j = 0; j <= i; j++) {
        let g = 0
        for (let k = 0; k <= i; k++) g += v[k * n + i + 1]! * v[k * n + j]!
        for (let k = 0; k <= i; k++) v[k * n + j]! -= g * d[k]!
      }
    }
    for (let k = 0; k <= i; k++) v[k * n + i + 1] = 0
  }
  for (let j = 0; j < n; j++) {
    d[j] = v[(n - 1) * n + j]!
    v[(n - 1) * n + j] = 0
  }
  v[(n - 1) * n + n - 1] = 1
  e[0] = 0
}

/** Implicit QL on the tridiagonal (d, e); `z` holds Vᵀ (row k is the k-th column of V). */
function tql2(n: number, z: Float64Array, d: Float64Array, e: Float64Array): void {
  for (let i = 1; i < n; i++) e[i - 1] = e[i]!
  e[n - 1] = 0
  let f = 0
  let tst1 = 0
  const eps = 2 ** -52
  for (let l = 0; l < n; l++) {
    tst1 = Math.max(tst1, Math.abs(d[l]!) + Math.abs(e[l]!))
    let m = l
    while (m < n - 1 && Math.abs(e[m]!) > eps * tst1) m++
    if (m > l) {
      let iterations = 0
      do {
        if (++iterations > MAX_QL_ITERATIONS_PER_VALUE) throw new RangeError('symmetric eigensolver did not converge')
        let g = d[l]!
        let p = (d[l + 1]! - g) / (2 * e[l]!)
        let r = Math.hypot(p, 1)
        if (p < 0) r = -r
        d[l] = e[l]! / (p + r)
        d[l + 1] = e[l]! * (p + r)
        const dl1 = d[l + 1]!
        let h = g - d[l]!
        for (let i = l + 2; i < n; i++) d[i]! -= h
        f += h
        p = d[m]!
        let c = 1
        let c2 = c
        let c3 = c
        const el1 = e[l + 1]!
        let s = 0
        let s2 = 0
        for (let i = m - 1; i >= l; i--) {
          c3 = c2
          c2 = c
          s2 = s
          g = c * e[i]!
          h = c * p
          r = Math.hypot(p, e[i]!)
          e[i + 1] = s * r
          s = e[i]! / r
          c = p / r
          p = c * d[i]! - s * g
          d[i + 1] = h + s * (c * g + s * d[i]!)
          const zi = i * n
          const zi1 = (i + 1) * n
          for (let k = 0; k < n; k++) {
            h = z[zi1 + k]!
            z[zi1 + k] = s * z[zi + k]! + c * h
            z[zi + k] = c * z[zi + k]! - s * h
          }
        }
        p = (-s * s2 * c3 * el1 * e[l]!) / dl1
        e[l] = s * p
        d[l] = c * p
      } while (Math.abs(e[l]!) > eps * tst1)
    }
    d[l] = d[l]! + f
    e[l] = 0
  }
}
