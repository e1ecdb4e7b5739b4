/**
 * Synthetic LoRA adapters for the end-to-end benchmark, built so that every
 * serving form holds exactly the same adapters:
 *
 *   ΔWᵢ = Bᵢ·Aᵢ with Bᵢ = U·Cᵢ,   so   ΔWᵢ = U·A′ᵢ with A′ᵢ = Cᵢ·Aᵢ
 *
 * per module: U `[out, K]` shared by all adapters, Cᵢ `[K, r]` and Aᵢ
 * `[r, in]` per adapter. The routed stacks (gather, segment, mask, merged)
 * serve Aᵢ and Bᵢ, shared-b serves A′ᵢ and U, and in real arithmetic they
 * are the same product: all strategies must generate the same tokens, and
 * one reference checks them all. The values are small integers times powers
 * of two, so Aᵢ, Bᵢ and U are exact in binary16 (16-bit adapters, as real
 * packs are stored) and A′ᵢ exact in float32; the scaling is 1 (folded in).
 * Their size: ‖ΔW‖ about 5% of ‖W‖ per element, as `lora synth adapters`.
 *
 * Nothing is kept: a module's stacks are generated when a graph asks for
 * them, and adapter i's values depend only on the seed, i and the module
 * (the same adapters whatever the count loaded).
 */
import {Rng} from '../random.js'
import type {AdapterFactors, ModuleFactors} from '../runtime/adapter-factors.js'
import type {ModuleStacks, SharedModuleStacks} from '../runtime/routed-deltas.js'
import type {AdaptedModule, E2eAdapterSet, FactorForm} from './adapter-set.js'

/** Entries of U and Cᵢ: integers in −3…3. */
const SMALL = 3
/** Entries of Aᵢ: integers in −1024…1024 (11 bits: exact in binary16). */
const WIDE = 1024
/** U and Cᵢ are scaled by 2^−8 each. */
const SMALL_EXP = 8
/** ‖ΔW‖ / ‖W‖ per element (W has std 1/√in). */
const DELTA_RATIO = 0.05

/** What a synthetic adapter set is made of. */
export interface SyntheticAdapterOptions {
  /** Adapters N. */
  readonly count: number
  readonly rank: number
  /** Width K of the shared basis (≥ 1). */
  readonly sharedK: number
  readonly modules: readonly Omit<AdaptedModule, 'rank'>[]
  readonly seed: number
}

/** Adapter names `adapter-0000` …, padded to the count's width. */
export function syntheticAdapterNames(count: number): string[] {
  const width = Math.max(4, String(count - 1).length)
  return Array.from({length: count}, (_, i) => `adapter-${String(i).padStart(width, '0')}`)
}

function smallInts(rng: Rng, n: number): Int8Array {
  const out = new Int8Array(n)
  for (let i = 0; i < n; i++) out[i] = (rng.nextUint32() % (2 * SMALL + 1)) - SMALL
  return out
}

function wideInts(rng: Rng, n: number): Int16Array {
  const out = new Int16Array(n)
  for (let i = 0; i < n; i++) out[i] = (rng.nextUint32() % (2 * WIDE + 1)) - WIDE
  return out
}

/** The power of two A is scaled by, so that ΔW's entries have std `DELTA_RATIO`/√in. */
function aExponent(rank: number, k: number, inDim: number): number {
  const smallStd = Math.sqrt(((SMALL * (SMALL + 1) * (2 * SMALL + 1)) / 3) / (2 * SMALL + 1))
  const wideStd = Math.sqrt((((2 * WIDE + 1) ** 2 - 1) / 12))
  const intStd = smallStd * smallStd * Math.sqrt(k) * wideStd * Math.sqrt(rank)
  return Math.round(Math.log2((intStd * Math.sqrt(inDim)) / DELTA_RATIO)) - 2 * SMALL_EXP
}

/** A synthetic adapter set (see the module comment). */
export function syntheticAdapters(options: SyntheticAdapterOptions): E2eAdapterSet {
  const {count, rank: r, sharedK: K, seed} = options
  const names = syntheticAdapterNames(count)
  const index = new Map(names.map((n, i) => [n, i]))
  const modules = options.modules.map((m) => ({...m, rank: r}))
  const byName = new Map(modules.map((m) => [m.name, m]))
  const S = count + 1
  const scaleSmall = 2 ** -SMALL_EXP

  const basis = (m: AdaptedModule) => smallInts(new Rng(seed, 'e2e-shared-basis', m.name), m.out * K) // U [out, K]
  const mix = (i: number, m: AdaptedModule) => smallInts(new Rng(seed, 'e2e-adapter', i, m.name, 'C'), K * r) // Cᵢ [K, r]
  const down = (i: number, m: AdaptedModule) => wideInts(new Rng(seed, 'e2e-adapter', i, m.name, 'A'), r * m.in) // Aᵢ [r, in]
  const aScale = (m: AdaptedModule) => 2 ** -aExponent(r, K, m.in)

  /** Bᵢ = U·Cᵢ `[out, r]` into `target` at `offset`. */
  const writeB = (u: Int8Array, c: Int8Array, m: AdaptedModule, target: Float32Array, offset: number) => {
    const acc = new Int32Array(r)
    for (let o = 0; o < m.out; o++) {
      acc.fill(0)
      for (let k = 0; k < K; k++) {
        const uv = u[o * K + k]!
        if (uv === 0) continue
        for (let j = 0; j < r; j++) acc[j]! += uv * c[k * r + j]!
      }
      for (let j = 0; j < r; j++) target[offset + o * r + j] = acc[j]! * scaleSmall * scaleSmall
    }
  }
  /** A′ᵢ = Cᵢ·Aᵢ `[K, in]` into `target` at `offset`. */
  const writeAk = (c: Int8Array, a: Int16Array, m: AdaptedModule, target: Float32Array, offset: number) => {
    const acc = new Int32Array(m.in)
    const scale = scaleSmall * aScale(m)
    for (let k = 0; k < K; k++) {
      acc.fill(0)
      for (let j = 0; j < r; j++) {
        const cv = c[k * r + j]!
        if (cv === 0) continue
        const row = j * m.in
        for (let x = 0; x < m.in; x++) acc[x]! += cv * a[row + x]!
      }
      for (let x = 0; x < m.in; x++) target[offset + k * m.in + x] = acc[x]! * scale
    }
  }
  const writeA = (a: Int16Array, m: AdaptedModule, target: Float32Array, offset: number) => {
    const scale = aScale(m)
    for (let x = 0; x < a.length; x++) target[offset + x] = a[x]! * scale
  }
  const uT = (u: Int8Array, m: AdaptedModule) => {
    const out = new Float32Array(K * m.out)
    for (let o = 0; o < m.out; o++) for (let k = 0; k < K; k++) out[k * m.out + o] = u[o * K + k]! * scaleSmall
    return out
  }

  return {
    kind: 'synthetic',
    source: `${count} synthetic adapters (rank ${r}, seed ${seed})`,
    adapters: names,
    modules,
    rank: r,
    sharedK: K,
    sharedExact: true,
    async stacks(module): Promise<ModuleStacks | undefined> {
      const m = byName.get(module)
      if (!m) return undefined
      const u = basis(m)
      const a = new Float32Array(S * r * m.in)
      const b = new Float32Array(S * m.out * r)
      for (let i = 0; i < count; i++) {
        writeA(down(i, m), m, a, (i + 1) * r * m.in)
        writeB(u, mix(i, m), m, b, (i + 1) * m.out * r)
      }
      return {a, b, rank: r, in: m.in, out: m.out}
    },
    async shared(module): Promise<SharedModuleStacks | undefined> {
      const m = byName.get(module)
      if (!m) return undefined
      const ak = new Float32Array(S * K * m.in)
      for (let i = 0; i < count; i++) writeAk(mix(i, m), down(i, m), m, ak, (i + 1) * K * m.in)
      return {ak, bk: uT(basis(m), m), k: K, in: m.in, out: m.out}
    },
    async factors(name: string, form: FactorForm): Promise<AdapterFactors> {
      const i = index.get(name)
      if (i === undefined) throw new Error(`synthetic adapters: no adapter "${name}"`)
      const out = new Map<string, ModuleFactors>()
      for (const m of modules) {
        const u = basis(m)
        const c = mix(i, m)
        const a = down(i, m)
        if (form === 'stacks') {
          const av = new Float32Array(r * m.in)
          const bv = new Float32Array(m.out * r)
          writeA(a, m, av, 0)
          writeB(u, c, m, bv, 0)
          out.set(m.name, {r, scaling: 1, a: av, b: bv, in: m.in, out: m.out})
        } else {
          const ak = new Float32Array(K * m.in)
          writeAk(c, a, m, ak, 0)
          const bu = new Float32Array(m.out * K)
          for (let x = 0; x < bu.length; x++) bu[x] = u[x]! * scaleSmall
          out.set(m.name, {r: K, scaling: 1, a: ak, b: bu, in: m.in, out: m.out})
        }
      }
      return {name, source: `synthetic adapter ${name}`, modules: out}
    },
    bytes(form) {
      return modules.reduce((sum, m) => sum + 4 * (form === 'stacks' ? S * r * (m.in + m.out) : S * K * m.in + K * m.out), 0)
    },
    async close() {},
  }
}
