/**
 * Small dense float64 kernels in plain TypeScript, for the problems that are
 * too small to be worth a call into onnxruntime (a few hundred rows at most):
 * products, transposes, norms, and Cholesky factors.
 *
 * Every matrix is row-major: element (i, j) of an `rows × cols` matrix is
 * `m[i * cols + j]`.
 */

/** `a [m, k] @ b [k, n]` → `[m, n]` (float64). */
export function matmul(a: ArrayLike<number>, m: number, k: number, b: ArrayLike<number>, n: number): Float64Array {
  checkSize(a, m * k, 'a')
  checkSize(b, k * n, 'b')
  const c = new Float64Array(m * n)
  for (let i = 0; i < m; i++) {
    const ci = i * n
    for (let p = 0; p < k; p++) {
      const av = a[i * k + p]!
      if (av === 0) continue
      const bp = p * n
      for (let j = 0; j < n; j++) c[ci + j]! += av * b[bp + j]!
    }
  }
  return c
}

/** `aᵀ @ b` for `a [k, m]`, `b [k, n]` → `[m, n]` (float64). */
export function matmulTransposeA(a: ArrayLike<number>, k: number, m: number, b: ArrayLike<number>, n: number): Float64Array {
  checkSize(a, k * m, 'a')
  checkSize(b, k * n, 'b')
  const c = new Float64Array(m * n)
  for (let p = 0; p < k; p++) {
    const ap = p * m
    const bp = p * n
    for (let i = 0; i < m; i++) {
      const av = a[ap + i]!
      if (av === 0) continue
      const ci = i * n
      for (let j = 0; j < n; j++) c[ci + j]! += av * b[bp + j]!
    }
  }
  return c
}

/** Transpose of a `[rows, cols]` matrix → `[cols, rows]` (float64). */
export function transpose(a: ArrayLike<number>, rows: number, cols: number): Float64Array {
  checkSize(a, rows * cols, 'a')
  const t = new Float64Array(rows * cols)
  for (let i = 0; i < rows; i++) for (let j = 0; j < cols; j++) t[j * rows + i] = a[i * cols + j]!
  return t
}

/** `[rows, cols]` row-major → `[cols, rows]`, in the same typed-array type (float32 weights, float64, binary16 bits). */
export function transposeTyped<T extends Float32Array | Float64Array | Uint16Array>(values: T, rows: number, cols: number): T {
  const out = new (values.constructor as {new (n: number): T})(values.length)
  for (let r = 0; r < rows; r++) for (let c = 0; c < cols; c++) out[c * rows + r] = values[r * cols + c]!
  return out
}

/** Σ x² over all elements. */
export function sumOfSquares(a: ArrayLike<number>, start = 0, end = a.length): number {
  let s = 0
  for (let i = start; i < end; i++) s += a[i]! * a[i]!
  return s
}

/** Columns `from .. from+count-1` of a `[rows, cols]` matrix → `[rows, count]`. */
export function sliceColumns(a: ArrayLike<number>, rows: number, cols: number, from: number, count: number): Float64Array {
  checkSize(a, rows * cols, 'a')
  if (from < 0 || count < 0 || from + count > cols) throw new RangeError(`columns ${from}..${from + count - 1} are outside 0..${cols - 1}`)
  const out = new Float64Array(rows * count)
  for (let i = 0; i < rows; i++) for (let j = 0; j < count; j++) out[i * count + j] = a[i * cols + from + j]!
  return out
}

/**
 * Upper-triangular `R` with `Rᵀ R = s` for a symmetric positive definite
 * `[n, n]` matrix (only its upper triangle is read), or `undefined` when a
 * pivot is not positive beyond `relativeTolerance` times the largest diagonal
 * element (the matrix is singular or indefinite to working precision).
 */
export function choleskyUpper(s: ArrayLike<number>, n: number, relativeTolerance = 1e-14): Float64Array | undefined {
  checkSize(s, n * n, 's')
  let maxDiagonal = 0
  for (let i = 0; i < n; i++) maxDiagonal = Math.max(maxDiagonal, Math.abs(s[i * n + i]!))
  const floor = relativeTolerance * maxDiagonal
  const r = new Float64Array(n * n)
  for (let i = 0; i < n; i++) {
    let d = s[i * n + i]!
    for (let k = 0; k < i; k++) d -= r[k * n + i]! ** 2
    if (!(d > floor)) return undefined
    const rii = Math.sqrt(d)
    r[i * n + i] = rii
    for (let j = i + 1; j < n; j++) {
      let v = s[i * n + j]!
      for (let k = 0; k < i; k++) v -= r[k * n + i]! * r[k * n + j]!
      r[i * n + j] = v / rii
    }
  }
  return r
}

/** `y R⁻¹` for `y [rows, n]` and upper-triangular `R [n, n]`, in place (each row solves `x R = y`). */
export function solveUpperRight(y: Float64Array, rows: number, r: ArrayLike<number>, n: number): Float64Array {
  checkSize(y, rows * n, 'y')
  checkSize(r, n * n, 'r')
  for (let i = 0; i < rows; i++) {
    const o = i * n
    for (let j = 0; j < n; j++) {
      let v = y[o + j]!
      for (let k = 0; k < j; k++) v -= y[o + k]! * r[k * n + j]!
      y[o + j] = v / r[j * n + j]!
    }
  }
  return y
}

/** Inverse of an upper-triangular `[n, n]` matrix with a non-zero diagonal (upper triangular too). */
export function invertUpper(r: ArrayLike<number>, n: number): Float64Array {
  checkSize(r, n * n, 'r')
  const identity = new Float64Array(n * n)
  for (let i = 0; i < n; i++) identity[i * n + i] = 1
  return solveUpperRight(identity, n, r, n)
}

/**
 * Inverse of a symmetric positive definite `[n, n]` matrix via its Cholesky
 * factor, or `undefined` when it is not positive definite.
 */
export function inverseSpd(s: ArrayLike<number>, n: number): Float64Array | undefined {
  const r = choleskyUpper(s, n)
  if (!r) return undefined
  // S⁻¹ = R⁻¹ R⁻ᵀ = X Xᵀ with X = R⁻¹.
  const x = invertUpper(r, n)
  const inv = new Float64Array(n * n)
  for (let i = 0; i < n; i++) {
    for (let j = i; j < n; j++) {
      let v = 0
      for (let k = 0; k < n; k++) v += x[i * n + k]! * x[j * n + k]!
      inv[i * n + j] = v
      inv[j * n + i] = v
    }
  }
  return inv
}

function checkSize(m: ArrayLike<number>, expected: number, name: string): void {
  if (m.length !== expected) throw new RangeError(`matrix ${name} has ${m.length} elements, expected ${expected}`)
}
