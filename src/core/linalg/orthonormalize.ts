/**
 * Orthonormal columns by modified Gram–Schmidt, applied twice ("twice is
 * enough", Giraud et al.) so the result is orthonormal to working precision.
 */

/**
 * Orthonormalize the `cols` columns of a row-major `rows × cols` float64 matrix in place.
 * @throws RangeError when the columns are linearly dependent (a column vanishes)
 */
export function orthonormalizeColumns(m: Float64Array, rows: number, cols: number): Float64Array {
  if (m.length !== rows * cols) throw new RangeError(`matrix has ${m.length} elements, expected ${rows}×${cols}`)
  for (let pass = 0; pass < 2; pass++) {
    for (let j = 0; j < cols; j++) {
      for (let k = 0; k < j; k++) {
        let dot = 0
        for (let i = 0; i < rows; i++) dot += m[i * cols + j]! * m[i * cols + k]!
        for (let i = 0; i < rows; i++) m[i * cols + j]! -= dot * m[i * cols + k]!
      }
      let norm = 0
      for (let i = 0; i < rows; i++) norm += m[i * cols + j]! ** 2
      norm = Math.sqrt(norm)
      if (!(norm > 1e-300)) throw new RangeError(`column ${j} is linearly dependent on the previous ones`)
      for (let i = 0; i < rows; i++) m[i * cols + j]! /= norm
    }
  }
  return m
}
