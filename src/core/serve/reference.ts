/**
 * The float64 reference of the models under test, computed in TypeScript
 * from the weight set's stored numbers for a sample of token rows: the
 * independent check every strategy's output is held to. Adapters use only
 * their true rank (padding rows and columns are never read), so wrong
 * padding shows up as an error. The shared-B form uses each module's own K;
 * when it came from a `lora-pack-shared-b` file (`--shared-b`), A' and U are
 * read from that file as stored, not from the weight set's copy (A' rounded
 * to f16 when the stacks are stored so). Stacks stored as f16 are read as
 * stored: the reference is exact for the values served.
 */
import {SharedBFile} from '../formats/shared-b-file.js'
import {fromFloat, toFloat64} from '../dtype.js'
import {blockArchitecture} from './block-architectures.js'
import {ModuleSpec, groupOf, layoutNames} from './lora-layout.js'
import {RMS_EPS} from './model-stack.js'
import type {RoutingStep} from './routing.js'
import type {ReferenceKind} from './strategy.js'
import type {WeightSet} from './weights/weight-set.js'

/** One reference computation: the weights, which adapters count, the step, and the rows wanted. */
export interface ReferenceRequest {
  set: WeightSet
  kind: ReferenceKind
  step: RoutingStep
  /** Tokens per request T. */
  tokens: number
  /** The model input `[N, hidden]`. */
  x: Float32Array
  /** Token rows to compute. */
  rows: readonly number[]
}

/** Output rows `[rows.length][hidden]` in float64. */
export async function referenceRows(r: ReferenceRequest): Promise<Float64Array[]> {
  const {set} = r
  const file = r.kind === 'shared' && set.spec.sharedBPath ? await SharedBFile.open(set.spec.sharedBPath) : undefined
  try {
    return await forward(r, sharedWeights(set, file))
  } finally {
    await file?.close()
  }
}

async function forward(r: ReferenceRequest, shared: SharedWeights): Promise<Float64Array[]> {
  const {set} = r
  const D = set.spec.dims.hidden
  let h = r.rows.map((row) => Float64Array.from(r.x.subarray(row * D, (row + 1) * D)))
  const mixes = r.rows.map((row) => {
    const b = Math.floor(row / r.tokens)
    return r.step.mixtures?.[b] ?? [{slot: r.step.slots[b]!, weight: 1}]
  })
  const modules = new Map(set.modules.map((m) => [m.key, m]))
  const linear = (key: string, input: Float64Array[]) => applyLinear(r, modules.get(key)!, input, mixes, shared)
  if (set.spec.dims.model === 'layer') return linear('L0.q_proj', h)
  const mlp = blockArchitecture(set.spec.dims.block?.architecture).mlp
  for (let layer = 0; layer < set.spec.dims.layers; layer++) {
    const n1 = rmsNorm(h, set.read(layoutNames.norm(layer, 1), 0, D))
    let a: Float64Array[]
    if (modules.has(`L${layer}.qkv_proj`)) {
      // a fused q/k/v: the sum of its three equal parts
      const t = await linear(`L${layer}.qkv_proj`, n1)
      const part = modules.get(`L${layer}.qkv_proj`)!.out / 3
      a = t.map((ti) => Float64Array.from({length: part}, (_, j) => ti[j]! + ti[part + j]! + ti[2 * part + j]!))
    } else {
      const q = await linear(`L${layer}.q_proj`, n1)
      const k = await linear(`L${layer}.k_proj`, n1)
      const v = await linear(`L${layer}.v_proj`, n1)
      // grouped-query k and v repeated to q's width
      a = q.map((qi, i) => qi.map((val, j) => val + k[i]![j % k[i]!.length]! + v[i]![j % v[i]!.length]!))
    }
    const o = await linear(`L${layer}.o_proj`, a)
    h = h.map((hi, i) => hi.map((val, j) => val + o[i]![j]!))
    const n2 = rmsNorm(h, set.read(layoutNames.norm(layer, 2), 0, D))
    const up = await linear(`L${layer}.up_proj`, n2)
    let act: Float64Array[]
    if (mlp === 'gated') {
      const gate = await linear(`L${layer}.gate_proj`, n2)
      act = gate.map((gi, i) => gi.map((val, j) => (val / (1 + Math.exp(-val))) * up[i]![j]!))
    } else act = up.map((ui) => ui.map((val) => Math.max(0, val)))
    const d = await linear(`L${layer}.down_proj`, act)
    h = h.map((hi, i) => hi.map((val, j) => val + d[i]![j]!))
  }
  return h
}

function rmsNorm(rows: Float64Array[], w: Float32Array): Float64Array[] {
  return rows.map((x) => {
    let ss = 0
    for (const v of x) ss += v * v
    const inv = 1 / Math.sqrt(ss / x.length + RMS_EPS)
    return x.map((v, j) => v * inv * w[j]!)
  })
}

/** `x·Wᵀ` plus, per row, the adapter delta of its mixture. */
async function applyLinear(r: ReferenceRequest, m: ModuleSpec, input: Float64Array[], mixes: Array<Array<{slot: number; weight: number}>>, shared: SharedWeights): Promise<Float64Array[]> {
  const {set} = r
  const out = input.map(() => new Float64Array(m.out))
  // W^T [in, out], read a block of input rows at a time
  const block = Math.max(1, Math.floor((1 << 20) / m.out))
  for (let i0 = 0; i0 < m.in; i0 += block) {
    const n = Math.min(block, m.in - i0)
    const w = set.read(layoutNames.weight(m), i0 * m.out, n * m.out)
    input.forEach((x, t) => {
      const y = out[t]!
      for (let i = 0; i < n; i++) {
        const xi = x[i0 + i]!
        if (xi === 0) continue
        const row = i * m.out
        for (let o = 0; o < m.out; o++) y[o]! += xi * w[row + o]!
      }
    })
  }
  if (r.kind === 'base' || !m.targeted) return out
  for (const [t, x] of input.entries()) {
    for (const {slot, weight} of mixes[t]!) {
      if (slot === 0 || weight === 0) continue
      const delta = r.kind === 'stacks' ? stackDelta(set, m, slot, x) : sharedDelta(await shared(m, slot), m, x)
      const y = out[t]!
      for (let o = 0; o < m.out; o++) y[o]! += weight * delta[o]!
    }
  }
  return out
}

/** `s·B·A·x` of one adapter at its true rank. */
function stackDelta(set: WeightSet, m: ModuleSpec, slot: number, x: Float64Array): Float64Array {
  const {group, index: j} = groupOf(set.groups, m.key)
  const R = set.rank
  const r = set.info.slotRanks[slot]!
  const G = group.members.length
  const a = set.read(layoutNames.groupA(group), (slot * G * R + j * R) * m.in, r * m.in)
  const b = set.read(layoutNames.moduleB(m), slot * m.out * R, m.out * R)
  return lowRankDelta(a, b, r, R, m, x)
}

/** `B·(A·x)` at rank r: A's rows `[r, in]`; B `[out, stride]`, its first r columns. */
function lowRankDelta(a: ArrayLike<number>, b: ArrayLike<number>, r: number, stride: number, m: ModuleSpec, x: Float64Array): Float64Array {
  const h = new Float64Array(r)
  for (let c = 0; c < r; c++) {
    let s = 0
    for (let i = 0; i < m.in; i++) s += a[c * m.in + i]! * x[i]!
    h[c] = s
  }
  const d = new Float64Array(m.out)
  for (let o = 0; o < m.out; o++) {
    let s = 0
    for (let c = 0; c < r; c++) s += b[o * stride + c]! * h[c]!
    d[o] = s
  }
  return d
}

/** One adapter's shared-B weights on a module at the module's own K: A' `[K, in]`, U `[out, K]`. */
type SharedWeights = (m: ModuleSpec, slot: number) => Promise<{k: number; a: ArrayLike<number>; u: ArrayLike<number>}>

/** From the `--shared-b` file as stored when there is one, else from the weight set (rows past K never read). */
function sharedWeights(set: WeightSet, file: SharedBFile | undefined): SharedWeights {
  return async (m, slot) => {
    const k = set.sharedRank(m.key)
    if (file) {
      const a = (await file.readA(m.path, slot)).toFloat64()
      // f16 stacks: A' as the weight set stores it, rounded once from the file's values
      return {k, a: set.stackDtype === 'f16' ? toFloat64('F16', fromFloat('F16', a)) : a, u: (await file.readSharedB(m.path)).toFloat64()}
    }
    const {group, index: j} = groupOf(set.groups, m.key)
    const W = set.sharedWidth
    const G = group.members.length
    const a = set.read(layoutNames.groupAk(group), (slot * G * W + j * W) * m.in, k * m.in)
    const bk = set.read(layoutNames.moduleBk(m), 0, k * m.out) // Uᵀ [K, out]
    const u = new Float64Array(m.out * k)
    for (let c = 0; c < k; c++) for (let o = 0; o < m.out; o++) u[o * k + c] = bk[c * m.out + o]!
    return {k, a, u}
  }
}

/** `U·A'·x` of one adapter in the shared-B form. */
function sharedDelta(w: {k: number; a: ArrayLike<number>; u: ArrayLike<number>}, m: ModuleSpec, x: Float64Array): Float64Array {
  return lowRankDelta(w.a, w.u, w.k, w.k, m, x)
}

/** Largest |y − y_ref| over the sampled rows, and the largest |y_ref|. */
export function compareRows(actual: Float32Array, hidden: number, rows: readonly number[], reference: readonly Float64Array[]): {maxAbsError: number; maxAbsRef: number} {
  let maxAbsError = 0
  let maxAbsRef = 0
  rows.forEach((row, i) => {
    const ref = reference[i]!
    for (let j = 0; j < hidden; j++) {
      const e = Math.abs(actual[row * hidden + j]! - ref[j]!)
      if (!(e <= maxAbsError)) maxAbsError = Number.isNaN(e) ? Infinity : e
      maxAbsRef = Math.max(maxAbsRef, Math.abs(ref[j]!))
    }
  })
  return {maxAbsError, maxAbsRef}
}
