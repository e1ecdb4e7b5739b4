/**
 * Where a weight set's numbers come from: a real base model (transposed to
 * W^T for MatMul), and the adapter stacks (synthetic, or a pack file in
 * `pack-stacks.ts`), each written slot by slot into the layout.
 */
import {toFloat32} from '../../dtype.js'
import {InputError} from '../../errors.js'
import {openModel} from '../../formats/sharded-model.js'
import type {TensorSource} from '../../formats/tensor-source.js'
import {Rng} from '../../random.js'
import {formatShape} from '../../shape.js'
import {GroupSpec, ModuleSpec, StackDims, moduleSpecs} from '../lora-layout.js'

/** Padded rank R of a spec. */
export function paddedRank(spec: {ranks: readonly number[]}): number {
  return Math.max(...spec.ranks)
}

/** Rank of adapter `i` (0-based), before padding. */
export function adapterRank(spec: {ranks: readonly number[]}, i: number): number {
  return spec.ranks[i % spec.ranks.length]!
}

/** Elements generated per write. */
const CHUNK = 1 << 20

/**
 * Fill `count` elements with uniform values of standard deviation `std`
 * (cheaper than normals and as good for timing and references), from the
 * stream of (seed, labels).
 */
export function fillSynthetic(write: (offset: number, data: Float32Array) => void, count: number, std: number, seed: number, ...labels: Array<string | number>): void {
  const rng = new Rng(seed, ...labels)
  const scale = (std * Math.sqrt(3)) / 2 ** 31
  const buf = new Float32Array(Math.min(CHUNK, count))
  for (let offset = 0; offset < count; offset += buf.length) {
    const n = Math.min(buf.length, count - offset)
    const view = n === buf.length ? buf : buf.subarray(0, n)
    for (let i = 0; i < n; i++) view[i] = ((rng.nextUint32() | 0) + 0.5) * scale
    write(offset, view)
  }
}

/** Writes `data` at element `elementOffset` of the tensor being filled. */
export type ElementWriter = (elementOffset: number, data: Float32Array) => void

/** Adapter stacks in the routing layout, written slot by slot (slot 0 stays zero). */
export interface StackSource {
  readonly slots: number
  /** Padded rank R. */
  readonly rank: number
  /** True rank of each slot (slot 0: 0). */
  readonly slotRanks: number[]
  /** `[S, G·R, in]`: member j's A in rows j·R…, zero-padded past its rank. */
  writeGroupA(group: GroupSpec, write: ElementWriter): Promise<void> | void
  /** `[S, out, R]`: scaling·B, zero-padded past its rank. */
  writeModuleB(module: ModuleSpec, write: ElementWriter): Promise<void> | void
  close(): Promise<void>
}

/** Synthetic B std: ‖B·A‖_F ≈ 5% of ‖W‖_F for W ~ N(0, 1/in) and A ~ N(0, 1/in). */
export function syntheticBStd(rank: number): number {
  return 0.05 / Math.sqrt(rank)
}

/** What seeded stacks are drawn from (a `WeightSetSpec` has it). */
export interface SyntheticStackSpec {
  /** Adapters N (slots S = N + 1). */
  adapters: number
  /** Ranks assigned to adapters in turn; stacks pad to the largest. */
  ranks: readonly number[]
  seed: number
}

/** Seeded stacks: A ~ U with std 1/√in, B (scaling folded) with std 0.05/√r. */
export function syntheticStacks(spec: SyntheticStackSpec): StackSource {
  const S = spec.adapters + 1
  const R = paddedRank(spec)
  const slotRanks = [0, ...Array.from({length: spec.adapters}, (_, i) => adapterRank(spec, i))]
  return {
    slots: S,
    rank: R,
    slotRanks,
    writeGroupA(g, write) {
      const G = g.members.length
      const block = new Float32Array(G * R * g.in)
      for (let s = 1; s < S; s++) {
        const r = slotRanks[s]!
        block.fill(0)
        g.members.forEach((m, j) => {
          fillSynthetic((o, d) => block.set(d, j * R * g.in + o), r * g.in, 1 / Math.sqrt(g.in), spec.seed, 'A', m.key, s)
        })
        write(s * block.length, block)
      }
    },
    writeModuleB(m, write) {
      const block = new Float32Array(m.out * R)
      for (let s = 1; s < S; s++) {
        const r = slotRanks[s]!
        const values = new Float32Array(m.out * r)
        fillSynthetic((o, d) => values.set(d, o), values.length, syntheticBStd(r), spec.seed, 'B', m.key, s)
        block.fill(0)
        for (let o = 0; o < m.out; o++) for (let c = 0; c < r; c++) block[o * R + c] = values[o * r + c]!
        write(s * block.length, block)
      }
    },
    async close() {},
  }
}

/** A real base model (our `synth base` layout / Hugging Face Llama names). */
export class BaseWeightSource {
  private constructor(private readonly source: TensorSource) {}

  /**
   * Open `path` and check that it has every projection and norm of `dims`
   * with the right shapes.
   * @throws InputError naming the tensor and both shapes on a mismatch.
   */
  static async open(path: string, dims: StackDims): Promise<BaseWeightSource> {
    const source = await openModel(path)
    const base = new BaseWeightSource(source)
    try {
      for (const m of moduleSpecs(dims)) base.check(`${m.path}.weight`, [m.out, m.in])
      if (dims.model === 'llama') {
        for (let layer = 0; layer < dims.layers; layer++) {
          base.check(normName(layer, 1), [dims.hidden])
          base.check(normName(layer, 2), [dims.hidden])
        }
      }
    } catch (error) {
      await source.close()
      throw error
    }
    return base
  }

  private check(name: string, shape: number[]): void {
    const info = this.source.tensors.get(name)
    if (!info) throw new InputError('BASE_TENSOR_MISSING', `read base ${this.source.path}: tensor "${name}" is missing (the bench needs hidden, intermediate and layers as given)`)
    if (info.shape.length !== shape.length || info.shape.some((d, i) => d !== shape[i])) {
      throw new InputError('BASE_SHAPE_MISMATCH', `read base ${this.source.path}: tensor "${name}" has shape ${formatShape(info.shape)} (expected ${formatShape(shape)} from --hidden/--intermediate)`)
    }
  }

  /** Write W^T `[in, out]` of `m`. */
  async writeTransposed(m: ModuleSpec, write: ElementWriter): Promise<void> {
    const t = await this.source.readTensor(`${m.path}.weight`)
    const w = toFloat32(t.dtype, t.bytes)
    const rows = Math.max(1, Math.floor((1 << 20) / m.out))
    for (let i0 = 0; i0 < m.in; i0 += rows) {
      const n = Math.min(rows, m.in - i0)
      const block = new Float32Array(n * m.out)
      for (let i = 0; i < n; i++) for (let o = 0; o < m.out; o++) block[i * m.out + o] = w[o * m.in + i0 + i]!
      write(i0 * m.out, block)
    }
  }

  async writeNorm(layer: number, which: 1 | 2, write: ElementWriter): Promise<void> {
    const t = await this.source.readTensor(normName(layer, which))
    write(0, toFloat32(t.dtype, t.bytes))
  }

  close(): Promise<void> {
    return this.source.close()
  }
}

function normName(layer: number, which: 1 | 2): string {
  return `model.layers.${layer}.${which === 1 ? 'input_layernorm' : 'post_attention_layernorm'}.weight`
}
