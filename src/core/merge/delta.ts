/**
 * The merge delta of one base tensor as two thin factors:
 * `ΔW = Σ_k c_k · (B_k A_k)` (or its transpose) `= P · Q` with
 *   normal (base [out, in]):      P = [c_1 B_1 | c_2 B_2 | …]  [out, R],  Q = [A_1; A_2; …]        [R, in]
 *   transposed (base [in, out]):  P = [A_1ᵀ | A_2ᵀ | …]        [in, R],   Q = [c_1 B_1ᵀ; c_2 B_2ᵀ; …] [R, out]
 * where R = Σ r_k. Rows of the stored tensor are rows of P, so any row range
 * of ΔW is `P[rows] · Q`: the merge streams by row chunks.
 */
import {InputError} from '../errors.js'
import type {LoraAdapter} from '../formats/peft-adapter.js'
import {sanitizeName} from '../formats/safetensors-header.js'
import {gemm, gemmAddHalf} from '../linalg/matmul-engine.js'
import {permuteRowsToGguf} from '../models/gguf-names.js'
import type {MergeTarget} from './plan.js'

/** The largest finite float32. */
const F32_MAX = 3.4028234663852886e38

export interface DeltaFactors<T extends Float32Array | Float64Array = Float64Array> {
  readonly rows: number
  readonly cols: number
  /** R, the summed rank. */
  readonly rank: number
  /** [rows, R] */
  readonly p: T
  /** [R, cols] */
  readonly q: T
}

/** Read the adapters' A and B for `target` and build P and Q in float64 (the scale applied in float64). */
export async function loadDelta(target: MergeTarget, adapters: readonly LoraAdapter[]): Promise<DeltaFactors> {
  const [rows, cols] = target.shape
  const rank = target.terms.reduce((s, t) => s + t.module.r, 0)
  const p = new Float64Array(rows * rank)
  const q = new Float64Array(rank * cols)
  let offset = 0
  for (const term of target.terms) {
    const adapter = adapters[term.adapter]!
    const a = (await adapter.readA(term.module.name)).toFloat64() // [r, in]
    const b = (await adapter.readB(term.module.name)).toFloat64() // [out, r]
    const {r, in: nIn, out: nOut} = term.module
    const c = term.scale
    let largest = 0
    if (!term.transposed) {
      for (let i = 0; i < nOut; i++) for (let j = 0; j < r; j++) largest = Math.max(largest, Math.abs((p[i * rank + offset + j] = c * b[i * r + j]!)))
      for (let j = 0; j < r; j++) q.set(a.subarray(j * nIn, (j + 1) * nIn), (offset + j) * cols)
    } else {
      for (let i = 0; i < nIn; i++) for (let j = 0; j < r; j++) p[i * rank + offset + j] = a[j * nIn + i]!
      for (let j = 0; j < r; j++) for (let o = 0; o < nOut; o++) largest = Math.max(largest, Math.abs((q[(offset + j) * cols + o] = c * b[o * r + j]!)))
    }
    // the merge multiplies float32 copies: a scaled B past float32's range would merge as ±Infinity
    if (!(largest <= F32_MAX)) {
      throw new InputError(
        'MERGE_SCALE_OVERFLOW',
        `merge ${adapter.dir}: module "${sanitizeName(term.module.name)}": weight × scaling = ${c} makes w·s·B reach ${largest}, past float32's range (${F32_MAX.toExponential(3)}); check lora_alpha and --weight`,
      )
    }
    offset += r
  }
  // rows of a GGUF base's q/k are in llama.cpp's RoPE order: so are the delta's
  if (target.permuteHeads) {
    if (target.transposed) throw new RangeError(`${target.name}: a transposed delta cannot have its rows permuted`)
    return {rows, cols, rank, p: permuteRowsToGguf(p, target.permuteHeads, rank), q}
  }
  return {rows, cols, rank, p, q}
}

/** The same factors rounded to float32 (what the merge itself multiplies). */
export function toFloat32Factors(f: DeltaFactors): DeltaFactors<Float32Array> {
  return {rows: f.rows, cols: f.cols, rank: f.rank, p: Float32Array.from(f.p), q: Float32Array.from(f.q)}
}

/**
 * Rows `[start, start + count)` of `base + P·Q` (or of `P·Q` when `base` is omitted),
 * in the factors' precision.
 */
export async function deltaRows<T extends Float32Array | Float64Array>(f: DeltaFactors<T>, start: number, count: number, base?: T): Promise<T> {
  const p = f.p.subarray(start * f.rank, (start + count) * f.rank) as T
  return gemm(p, [count, f.rank], f.q, [f.rank, f.cols], base)
}

/** Rows `[start, start + count)` of `base + P·Q` for a binary16 base: float32 arithmetic, binary16 in and out. */
export async function deltaRowsHalf(f: DeltaFactors<Float32Array>, start: number, count: number, base16: Uint16Array): Promise<Uint16Array> {
  const p = f.p.subarray(start * f.rank, (start + count) * f.rank)
  return gemmAddHalf(p, [count, f.rank], f.q, [f.rank, f.cols], base16)
}
