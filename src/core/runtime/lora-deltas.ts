/**
 * Adapters applied unmerged, the same for every request: for a projection
 * adapted by adapters 1…n, the factors are concatenated along the rank,
 * `A = [A₁; …; Aₙ]` `[Σr, in]` and `B = [w₁s₁B₁ … wₙsₙBₙ]` `[out, Σr]`
 * (weight and scaling folded into B), and the graph computes
 * `Δ = (x · Aᵀ) · Bᵀ`: two thin products beside the base one.
 *
 * Merging instead (`mergedWeights`) adds `Σ wᵢ sᵢ Bᵢ Aᵢ` to the base weights
 * in float64 before the graph is built.
 */
import {InputError} from '../errors.js'
import {DecoderWeights, mapLinearWeights} from './decoder-weights.js'
import {floatLinear, linearValues} from './linear-weight.js'
import type {ProjectionDeltas} from './projection-delta.js'
import type {WeightedAdapter} from './adapter-factors.js'

/** Concatenated factors of one module. */
interface FusedModule {
  /** float32 `[in, Σr]` (Aᵀ, the MatMul's right operand). */
  aT: Float32Array
  /** float32 `[Σr, out]` ((w·s·B)ᵀ). */
  bT: Float32Array
  rank: number
}

function fuse(adapters: readonly WeightedAdapter[]): Map<string, FusedModule> {
  const parts = new Map<string, Array<{a: Float32Array; b: Float32Array; r: number; in: number; out: number; factor: number}>>()
  for (const {adapter, weight} of adapters)
    for (const [name, m] of adapter.modules) {
      if (weight === 0) continue
      const list = parts.get(name) ?? []
      list.push({a: m.a, b: m.b, r: m.r, in: m.in, out: m.out, factor: weight * m.scaling})
      parts.set(name, list)
    }
  const fused = new Map<string, FusedModule>()
  for (const [name, list] of parts) {
    const inDim = list[0]!.in
    const out = list[0]!.out
    const rank = list.reduce((s, p) => s + p.r, 0)
    const aT = new Float32Array(inDim * rank)
    const bT = new Float32Array(rank * out)
    let k0 = 0
    for (const p of list) {
      for (let k = 0; k < p.r; k++) {
        for (let i = 0; i < inDim; i++) aT[i * rank + k0 + k] = p.a[k * inDim + i]!
        for (let o = 0; o < out; o++) bT[(k0 + k) * out + o] = p.factor * p.b[o * p.r + k]!
      }
      k0 += p.r
    }
    fused.set(name, {aT, bT, rank})
  }
  return fused
}

/**
 * A delta provider applying `adapters` unmerged to every request.
 * (Check each adapter against the decoder first: `checkAdapterFits`.)
 */
export function loraDeltas(adapters: readonly WeightedAdapter[]): ProjectionDeltas {
  const fused = fuse(adapters)
  return {
    description: adapters.map((a) => (a.weight === 1 ? a.adapter.name : `${a.adapter.name}×${a.weight}`)).join(' + '),
    async delta({g, store}, site) {
      const f = fused.get(site.module)
      if (!f) return undefined
      const a = store.add(`${site.module}.lora_A.T`, f.aT, [site.in, f.rank])
      const b = store.add(`${site.module}.lora_B.T`, f.bT, [f.rank, site.out])
      return g.op('MatMul', [g.op('MatMul', [site.input, a]), b])
    },
  }
}

/**
 * `weights` with the adapters merged: `W + Σ wᵢ sᵢ Bᵢ Aᵢ` for every adapted
 * weight, accumulated in float64 and rounded once to float32. A quantized
 * base weight is decoded first (the merged weight is float).
 */
export function mergedWeights(weights: DecoderWeights, adapters: readonly WeightedAdapter[]): DecoderWeights {
  const byModule = new Map<string, WeightedAdapter[]>()
  for (const wa of adapters) for (const name of wa.adapter.modules.keys()) byModule.set(name, [...(byModule.get(name) ?? []), wa])
  return mapLinearWeights(weights, (name, base) => {
    const list = name.endsWith('.weight') ? byModule.get(name.slice(0, -'.weight'.length)) : undefined
    if (!list) return base
    const w = linearValues(base)
    const acc = Float64Array.from(w)
    for (const {adapter, weight} of list) {
      const m = adapter.modules.get(name.slice(0, -'.weight'.length))!
      if (m.out !== base.out || m.in !== base.in) throw new InputError('ADAPTER_MODULE_MISMATCH', `adapter ${adapter.source}: ${name} is [${base.out}, ${base.in}] but the adapter's product is [${m.out}, ${m.in}]`)
      for (let o = 0; o < m.out; o++)
        for (let k = 0; k < m.r; k++) {
          const bok = weight * m.scaling * m.b[o * m.r + k]!
          if (bok === 0) continue
          const row = o * m.in
          const arow = k * m.in
          for (let i = 0; i < m.in; i++) acc[row + i]! += bok * m.a[arow + i]!
        }
    }
    return floatLinear(Float32Array.from(acc), base.out, base.in)
  })
}
