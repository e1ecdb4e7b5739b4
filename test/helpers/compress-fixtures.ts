/**
 * Small synthetic modules for the compression tests, drawn with the same
 * generator as `lora synth adapters --shared-subspace F`, and their deltas
 * ΔW_i = s_i B_i A_i formed explicitly in float64 (small shapes only); and
 * hand-made sweep reports for the rank rule (`sweepReport`).
 */
import type {SweepReport} from '../../src/core/compress/compress-file.js'
import type {AdapterBlock, ModuleInput} from '../../src/core/compress/module-source.js'
import {orthonormalizeColumns} from '../../src/core/linalg/orthonormalize.js'
import {Rng} from '../../src/core/random.js'
import {synthesizeModule} from '../../src/core/synth/adapters.js'
import {product} from './reference-svd.js'

export interface FixtureOptions {
  name?: string
  in: number
  out: number
  /** One rank per adapter. */
  ranks: readonly number[]
  /** F of `--shared-subspace`. */
  sharedSubspace: number
  seed?: number
  /** lora_alpha per adapter (default 2r). The generator keeps ‖ΔW‖ independent of alpha. */
  alphas?: readonly number[]
  /** Factors on each adapter's scaling (default 1): varied gains give deltas of varied norms. */
  gains?: readonly number[]
  /** Slots of the adapters (default 1..N). */
  slots?: readonly number[]
}

/** A module with one synthetic adapter per rank. */
export function syntheticModule(o: FixtureOptions): ModuleInput {
  const name = o.name ?? 'model.layers.0.self_attn.q_proj'
  const seed = o.seed ?? 0
  const maxRank = Math.max(...o.ranks)
  const basis = orthonormalizeColumns(new Rng(seed, 'shared-basis', name).fillNormal(new Float64Array(o.out * maxRank)), o.out, maxRank)
  const adapters: AdapterBlock[] = o.ranks.map((r, i) => {
    const alpha = o.alphas?.[i] ?? 2 * r
    const {a, b} = synthesizeModule({seed, adapter: i, module: name, in: o.in, out: o.out, r, alpha, sharedSubspace: o.sharedSubspace, basis, basisRank: maxRank})
    return {slot: o.slots?.[i] ?? i + 1, r, scaling: (alpha / r) * (o.gains?.[i] ?? 1), a, b}
  })
  return {name, in: o.in, out: o.out, adapters}
}

/** ΔW = s B A, `[out, in]` float64. */
export function deltaOf(module: ModuleInput, index: number): Float64Array {
  const ad = module.adapters[index]!
  const d = product(ad.b, module.out, ad.r, ad.a, module.in)
  for (let i = 0; i < d.length; i++) d[i]! *= ad.scaling
  return d
}

/** [ΔW_1 … ΔW_N] `[out, N·in]` float64, each optionally scaled to unit norm. */
export function concatenatedDeltas(module: ModuleInput, normalize = false): Float64Array {
  const n = module.adapters.length
  const cols = n * module.in
  const x = new Float64Array(module.out * cols)
  for (let t = 0; t < n; t++) {
    const d = deltaOf(module, t)
    let norm = 0
    for (const v of d) norm += v * v
    const w = normalize && norm > 0 ? 1 / Math.sqrt(norm) : 1
    for (let i = 0; i < module.out; i++) for (let j = 0; j < module.in; j++) x[i * cols + t * module.in + j] = w * d[i * module.in + j]!
  }
  return x
}

/** A `lora compress --sweep` report with only what `chooseSharedRank` reads: K, savings (%) and the largest error per row (bytes before 100, mean error half the largest). */
export function sweepReport(rows: Array<[K: number, savings: number, errorMax: number]>): SweepReport {
  return {
    input: 'pack.safetensors',
    adapters: 4,
    slots: 5,
    input_dtype: 'F16',
    dtype: 'F16',
    normalize: false,
    ranks: rows.map((r) => r[0]),
    sweep: rows.map(([K, savings, errorMax]) => ({K, modules: [], totals: {bytes_before: 100, bytes_after: 100 - savings, savings_pct: savings, error_mean: errorMax / 2, error_max: errorMax, worst_adapter: null}})),
    seconds: 0,
    warnings: [],
  }
}
