/**
 * Small LoRA adapters with chosen ranks, alphas, patterns, targets, dtypes
 * and key styles, written as PEFT folders, plus float64 reference math for
 * pack tests.
 */
import {createHash} from 'node:crypto'
import {readFileSync} from 'node:fs'
import {DType, fromFloat} from '../../src/core/dtype.js'
import {AdapterTensor, peftLoraConfig, writeAdapter} from '../../src/core/formats/peft-adapter-writer.js'
import {Rng} from '../../src/core/random.js'
import {LoraAdapter} from '../../src/core/formats/peft-adapter.js'
import type {PackFile} from '../../src/core/formats/pack-file.js'
import * as assert from 'uvu/assert'
import {maxAbs, maxAbsDiff} from './index.js'

export interface FixtureModule {
  name: string
  in: number
  out: number
  /** The rank stored (must agree with the config's r / rank_pattern). */
  r: number
  kind?: 'linear' | 'embedding'
}

export interface FixtureAdapter {
  modules: FixtureModule[]
  /** adapter_config.json fields over PEFT's defaults. */
  config: Record<string, unknown>
  dtype?: DType
  seed: number
  /** Key prefix, default `base_model.model.`. */
  prefix?: string
  /** Adapter-name infix, e.g. `default`. */
  infix?: string
  /** Extra non-LoRA tensors (modules_to_save copies). */
  extras?: Array<{name: string; shape: number[]}>
  /** Add DoRA magnitude vectors. */
  dora?: boolean
}

/** Tensor names for a module under a key style. */
export function fixtureKeys(m: FixtureModule, prefix = 'base_model.model.', infix?: string): [string, string] {
  const tail = infix ? `.${infix}` : ''
  return m.kind === 'embedding'
    ? [`${prefix}${m.name}.lora_embedding_A${tail}`, `${prefix}${m.name}.lora_embedding_B${tail}`]
    : [`${prefix}${m.name}.lora_A${tail}.weight`, `${prefix}${m.name}.lora_B${tail}.weight`]
}

/** Write a fixture adapter folder; values are seeded normals (B never zero). */
export async function writeFixtureAdapter(dir: string, spec: FixtureAdapter): Promise<void> {
  const dtype = spec.dtype ?? 'F32'
  const tensors: AdapterTensor[] = []
  for (const m of spec.modules) {
    const rng = new Rng(spec.seed, m.name)
    const [aKey, bKey] = fixtureKeys(m, spec.prefix, spec.infix)
    const a = rng.fillNormal(new Float32Array(m.r * m.in), 0.5)
    const b = rng.fillNormal(new Float32Array(m.out * m.r), 0.5)
    tensors.push({name: aKey, dtype, shape: [m.r, m.in], data: fromFloat(dtype, a)})
    tensors.push({name: bKey, dtype, shape: [m.out, m.r], data: fromFloat(dtype, b)})
    if (spec.dora) tensors.push({name: `${spec.prefix ?? 'base_model.model.'}${m.name}.lora_magnitude_vector`, dtype, shape: [m.out], data: fromFloat(dtype, new Float32Array(m.out).fill(1))})
  }
  for (const e of spec.extras ?? []) {
    const n = e.shape.reduce((x, y) => x * y, 1)
    tensors.push({name: e.name, dtype, shape: e.shape, data: fromFloat(dtype, new Rng(spec.seed, e.name).fillNormal(new Float32Array(n)))})
  }
  await writeAdapter(dir, peftLoraConfig(spec.config), tensors)
}

/** sha256 of a file, hex. */
export function sha256File(path: string): string {
  return createHash('sha256').update(readFileSync(path)).digest('hex')
}

/**
 * The LoRA forward in float64: y = x Wᵀ + s·(x Aᵀ) Bᵀ for x [n, in], W [out, in],
 * A [r, in], B [out, r] (all row-major).
 */
export function loraForward(x: Float64Array, n: number, w: Float64Array, a: ArrayLike<number>, b: ArrayLike<number>, s: number, dims: {in: number; out: number; r: number}): Float64Array {
  const {in: k, out, r} = dims
  const y = new Float64Array(n * out)
  const xa = new Float64Array(n * r)
  for (let i = 0; i < n; i++) {
    for (let j = 0; j < r; j++) {
      let sum = 0
      for (let t = 0; t < k; t++) sum += x[i * k + t]! * a[j * k + t]!
      xa[i * r + j] = sum
    }
    for (let o = 0; o < out; o++) {
      let base = 0
      for (let t = 0; t < k; t++) base += x[i * k + t]! * w[o * k + t]!
      let delta = 0
      for (let j = 0; j < r; j++) delta += xa[i * r + j]! * b[o * r + j]!
      y[i * out + o] = base + s * delta
    }
  }
  return y
}

/**
 * Random W, x; the forward through the pack's padded slot (float64) equals the forward through the adapter's own files.
 * @returns the number of (adapter, module) pairs checked
 */
export async function assertForwardMatches(pack: PackFile, dirs: readonly string[], maxModulesPerAdapter = Infinity): Promise<number> {
  let checked = 0
  for (const [i, dir] of dirs.entries()) {
    const slot = i + 1
    const adapter = await LoraAdapter.load(dir)
    try {
      for (const own of [...adapter.modules.values()].slice(0, maxModulesPerAdapter)) {
        const m = pack.module(own.name)
        const rng = new Rng(99, own.name)
        const n = 3
        const aPacked = (await pack.readStackSlots(m.name, 'A', slot, 1)).toFloat64()
        const bPacked = (await pack.readStackSlots(m.name, 'B', slot, 1)).toFloat64()
        const sPacked = (await pack.readScaling(m.name))[slot]!
        const aOwn = (await adapter.readA(own.name)).toFloat64()
        const bOwn = (await adapter.readB(own.name)).toFloat64()
        let yPack: Float64Array
        let yOwn: Float64Array
        if (m.kind === 'embedding') {
          // an embedding LoRA adds s·B·A[:, id] to row id of the table
          const table = rng.fillNormal(new Float64Array(m.in * m.out))
          const ids = [0, 7, m.in - 1]
          const gather = (a: Float64Array, b: Float64Array, r: number, s: number) => {
            const y = new Float64Array(ids.length * m.out)
            ids.forEach((id, t) => {
              for (let o = 0; o < m.out; o++) {
                let d = 0
                for (let j = 0; j < r; j++) d += a[j * m.in + id]! * b[o * r + j]!
                y[t * m.out + o] = table[id * m.out + o]! + s * d
              }
            })
            return y
          }
          yPack = gather(aPacked, bPacked, m.R, sPacked)
          yOwn = gather(aOwn, bOwn, own.r, own.scaling)
        } else {
          const w = rng.fillNormal(new Float64Array(m.out * m.in))
          const x = rng.fillNormal(new Float64Array(n * m.in))
          yPack = loraForward(x, n, w, aPacked, bPacked, sPacked, {in: m.in, out: m.out, r: m.R})
          yOwn = loraForward(x, n, w, aOwn, bOwn, own.scaling, {in: m.in, out: m.out, r: own.r})
        }
        // the only difference allowed: the scaling stored as float32 (relative 2^-24)
        const bound = 1e-6 * Math.max(1, maxAbs(yOwn))
        assert.ok(maxAbsDiff(yPack, yOwn) <= bound, `${dir} ${own.name}: ${maxAbsDiff(yPack, yOwn)} > ${bound}`)
        checked++
      }
    } finally {
      await adapter.close()
    }
  }
  return checked
}
