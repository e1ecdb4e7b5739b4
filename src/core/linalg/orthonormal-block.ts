/**
 * Orthonormal columns for a tall block `Y [rows, cols]` (rows ≫ cols), keeping
 * the nesting of spans (column j of the result lies in the span of Y's first
 * j + 1 columns): Cholesky QR applied twice, whose heavy products run on the
 * matmul engine, with Householder QR as the fallback when the block is too
 * ill-conditioned for Cholesky (dependent or nearly dependent columns).
 */
import {choleskyUpper, invertUpper} from './dense.js'
import type {MatMulEngine} from './matmul-engine.js'
import {householderQr} from './qr.js'

/** Cholesky QR is trusted while the Gram matrix's pivots stay above this share of its largest diagonal element. */
const CHOLESKY_QR_PIVOT_TOLERANCE = 1e-10

/**
 * Orthonormalize the columns of the row-major `[rows, cols]` float64 block `y` (a new array is returned).
 * @throws RangeError when cols > rows
 */
export async function orthonormalizeBlock(engine: MatMulEngine, y: Float64Array, rows: number, cols: number): Promise<Float64Array> {
  if (cols > rows) throw new RangeError(`cannot orthonormalize ${cols} columns of length ${rows}`)
  let q = y
  for (let pass = 0; pass < 2; pass++) {
    const gram = await engine.matmul(q, [rows, cols], q, [rows, cols], {transposeA: true})
    const r = choleskyUpper(gram, cols, CHOLESKY_QR_PIVOT_TOLERANCE)
    if (!r) return householderQr(y, rows, cols).q!
    q = await engine.matmul(q, [rows, cols], invertUpper(r, cols), [cols, cols])
  }
  return q
}
