/**
 * Writing one module at width K, and measuring what was written.
 *
 * The stored shared B is Û = dtype(U_K) [out, K]. Given Û, the best A'_i in
 * the least-squares sense is (ÛᵀÛ)⁻¹ Ûᵀ ΔW_i (= Ûᵀ ΔW_i when Û is exactly
 * orthonormal; rounding makes it nearly so), computed as
 * ((ÛᵀÛ)⁻¹ Ûᵀ s_i B_i) A_i, so no out × in matrix is ever formed. It is
 * stored as Â'_i = dtype(A'_i) [K, in], with the scaling folded in.
 *
 * The error reported for adapter i is that of the stored values:
 *   e_i = ‖ΔW_i − Û Â'_i‖_F / ‖ΔW_i‖_F, with
 *   ‖ΔW_i − Û Â'_i‖² = ‖ΔW_i‖² − 2 s_i ⟨Ûᵀ B_i, Â'_i A_iᵀ⟩ + ⟨ÛᵀÛ, Â'_i Â'_iᵀ⟩,
 * every term a small product computed in float64 from the exact stored values.
 */
import {FloatOutputDType, fromFloat, toFloat64} from '../dtype.js'
import {inverseSpd} from '../linalg/dense.js'
import type {MatMulEngine} from '../linalg/matmul-engine.js'
import {type ModuleSource, readFloat64} from './module-source.js'
import {type SharedBasis, chunkSize} from './shared-basis.js'

export interface ProjectOptions {
  engine: MatMulEngine
  /** Stored dtype of `lora_A` and `lora_B_shared`. */
  dtype: FloatOutputDType
  /** Adapters per chunk (default: from the module's dims). */
  chunk?: number
  /**
   * Receives the stored A' of adapters `start .. start+count−1` (indices into
   * `source.adapters`) as `[count, K, in]` bytes in `dtype`. Without it the
   * values are computed, measured and dropped (a dry run, as `--sweep` does).
   */
  sink?: (start: number, count: number, bytes: Uint8Array) => Promise<void>
}

export interface ProjectedModule {
  readonly k: number
  /** Û: `[out, K]` bytes in the stored dtype. */
  readonly sharedB: Uint8Array
  /** Measured relative error of each adapter (in `source.adapters` order) on the stored values. */
  readonly errors: Float64Array
}

/**
 * Compute (and hand to `sink`) the stored A' of every adapter at width k, and the measured errors.
 * @throws RangeError for k outside 1..basis.kMax
 */
export async function projectModule(source: ModuleSource, basis: SharedBasis, k: number, options: ProjectOptions): Promise<ProjectedModule> {
  if (!Number.isSafeInteger(k) || k < 1 || k > basis.kMax) throw new RangeError(`k must be in 1..${basis.kMax} (got ${k})`)
  const {engine, dtype} = options
  const {out, R} = source
  const inDim = source.in
  const N = source.adapters.length
  const uk = new Float64Array(out * k)
  for (let i = 0; i < out; i++) for (let j = 0; j < k; j++) uk[i * k + j] = basis.u[i * basis.kMax + j]!
  const sharedB = fromFloat(dtype, uk)
  const stored = toFloat64(dtype, sharedB)
  const gram = await engine.matmul(stored, [out, k], stored, [out, k], {transposeA: true})
  const inverse = inverseSpd(gram, k)
  if (!inverse) throw new RangeError(`the stored shared basis of ${source.name} is singular in ${dtype} (K = ${k})`)
  const errors = new Float64Array(N)
  const chunk = Math.max(1, Math.min(chunkSize(source, options.chunk), Math.floor((64 * 1024 * 1024) / (k * inDim * 8)) || 1))
  for (let start = 0; start < N; start += chunk) {
    const count = Math.min(chunk, N - start)
    const data64 = await readFloat64(source, start, count)
    const b64 = data64.b
    // T_i = Ûᵀ B_i [K, R]; A'_i = (s_i (ÛᵀÛ)⁻¹ T_i) A_i.
    const t = await engine.matmul(stored, [out, k], b64, [count, out, R], {transposeA: true})
    const left = await engine.matmul(inverse, [k, k], t, [count, k, R])
    for (let a = 0; a < count; a++) {
      const s = source.adapters[start + a]!.scaling
      for (let j = a * k * R; j < (a + 1) * k * R; j++) left[j]! *= s
    }
    const aPrime = await engine.matmul(Float32Array.from(left), [count, k, R], Float32Array.from(data64.a), [count, R, inDim])
    const bytes = fromFloat(dtype, aPrime)
    if (options.sink) await options.sink(start, count, bytes)
    // Measured error terms from the stored values, in float64.
    const aStored = toFloat64(dtype, bytes)
    const a64 = data64.a
    const cross = await engine.matmul(aStored, [count, k, inDim], a64, [count, R, inDim], {transposeB: true})
    const self = await engine.matmul(aStored, [count, k, inDim], aStored, [count, k, inDim], {transposeB: true})
    for (let a = 0; a < count; a++) {
      const i = start + a
      const s = source.adapters[i]!.scaling
      const norm2 = basis.deltaNorms2[i]!
      let dot = 0
      for (let j = 0; j < k * R; j++) dot += t[a * k * R + j]! * cross[a * k * R + j]!
      let dd = 0
      for (let j = 0; j < k * k; j++) dd += gram[j]! * self[a * k * k + j]!
      const residual2 = Math.max(0, norm2 - 2 * s * dot + dd)
      // A zero ΔW_i (B_i = 0) gives T_i = 0, so A'_i = 0 is stored and nothing is lost.
      errors[i] = norm2 > 0 ? Math.sqrt(residual2 / norm2) : 0
    }
  }
  return {k, sharedB, errors}
}
