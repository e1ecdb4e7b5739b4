/**
 * Adapter stacks from a `lora pack` file (`--pack`): each module's
 * `lora_A [S, R_P, in]` and `lora_B [S, out, R_P]` (any float dtype) become
 * the bench layout, f32, fused A per group, scaling folded into B, every
 * module padded to the largest R_P of the targeted modules.
 */
import {InputError, UsageError} from '../../errors.js'
import {ALL_PROJECTIONS, Projection, isProjection} from '../../models/llama.js'
import {GroupSpec, ModuleSpec, StackDims, moduleSpecs} from '../lora-layout.js'
import {PackFile} from '../../formats/pack-file.js'
import type {ElementWriter, StackSource} from './weight-sources.js'

/** Bytes of pack data read per chunk of slots. */
const CHUNK_BYTES = 64 * 1024 * 1024

/** What a pack says about the model: dims its modules imply, the projections it adapts, N. */
export interface PackShape {
  adapters: number
  hidden?: number
  intermediate?: number
  layers: number
  targets: Projection[]
}

/**
 * Read a pack's header: adapter count, and the llama dims and targets its
 * module names and shapes imply.
 * @throws InputError for a file that is not a lora-pack or has no Llama projections.
 */
export async function readPackShape(path: string): Promise<PackShape> {
  const pack = await PackFile.open(path)
  try {
    const targets = new Set<Projection>()
    let layers = 0
    let hidden: number | undefined
    let intermediate: number | undefined
    for (const m of pack.modules.values()) {
      const match = /^model\.layers\.(\d+)\.(?:self_attn|mlp)\.(\w+)$/.exec(m.name)
      if (!match || !isProjection(match[2]!) || m.kind !== 'linear') continue
      const p = match[2] as Projection
      targets.add(p)
      layers = Math.max(layers, Number(match[1]) + 1)
      if (p === 'q_proj' || p === 'o_proj') hidden = m.in
      if (p === 'gate_proj' || p === 'up_proj') [hidden, intermediate] = [m.in, m.out]
      if (p === 'down_proj') [hidden, intermediate] = [m.out, m.in]
    }
    if (targets.size === 0) throw new InputError('PACK_NOT_LLAMA', `read ${path}: the pack has no Llama projection modules (model.layers.N.self_attn.q_proj …); the bench serves those`)
    return {adapters: pack.slots - 1, hidden, intermediate, layers, targets: ALL_PROJECTIONS.filter((p) => targets.has(p))}
  } finally {
    await pack.close()
  }
}

/**
 * Open `path` as the stack source for `dims`: every targeted module must be
 * in the pack with the right shape.
 * @throws InputError naming the module and both shapes on a mismatch.
 */
export async function openPackStacks(path: string, dims: StackDims, adapters: number): Promise<StackSource> {
  const pack = await PackFile.open(path)
  try {
    if (pack.slots !== adapters + 1) throw new UsageError('PACK_ADAPTERS_MISMATCH', `--adapters ${adapters} does not match the pack ${path} (it holds ${pack.slots - 1} adapters)`)
    await pack.checkNullSlot()
    let R = 1
    for (const m of moduleSpecs(dims).filter((x) => x.targeted)) {
      const entry = pack.modules.get(m.path)
      if (!entry) throw new InputError('PACK_MODULE_MISSING', `read ${path}: the pack has no module ${m.path} (needed by --targets ${dims.targets.join(',')})`)
      if (entry.in !== m.in || entry.out !== m.out) {
        throw new InputError('PACK_SHAPE_MISMATCH', `read ${path}: module ${m.path} is [out ${entry.out}, in ${entry.in}] but the model has [out ${m.out}, in ${m.in}] (--hidden/--intermediate or --base disagree with the pack)`)
      }
      R = Math.max(R, entry.R)
    }
    return new PackStacks(pack, R)
  } catch (error) {
    await pack.close()
    throw error
  }
}

class PackStacks implements StackSource {
  readonly slots: number
  /** Packs carry per-module ranks (rank_pattern); the reference reads every padded column, zeros included. */
  readonly slotRanks: number[]

  constructor(
    private readonly pack: PackFile,
    readonly rank: number,
  ) {
    this.slots = pack.slots
    this.slotRanks = [0, ...Array.from({length: pack.slots - 1}, () => rank)]
  }

  async writeGroupA(g: GroupSpec, write: ElementWriter): Promise<void> {
    const R = this.rank
    const G = g.members.length
    const per = G * R * g.in
    const count = Math.max(1, Math.floor(CHUNK_BYTES / (per * 4)))
    for (let s0 = 0; s0 < this.slots; s0 += count) {
      const n = Math.min(count, this.slots - s0)
      const block = new Float32Array(n * per)
      for (const [j, m] of g.members.entries()) {
        const Rp = this.pack.module(m.path).R
        const a = (await this.pack.readStackSlots(m.path, 'A', s0, n)).toFloat32() // [n, Rp, in]
        for (let s = 0; s < n; s++) block.set(a.subarray(s * Rp * g.in, (s + 1) * Rp * g.in), s * per + j * R * g.in)
      }
      write(s0 * per, block)
    }
  }

  async writeModuleB(m: ModuleSpec, write: ElementWriter): Promise<void> {
    const R = this.rank
    const Rp = this.pack.module(m.path).R
    const scaling = await this.pack.readScaling(m.path)
    const per = m.out * R
    const count = Math.max(1, Math.floor(CHUNK_BYTES / (per * 4)))
    for (let s0 = 0; s0 < this.slots; s0 += count) {
      const n = Math.min(count, this.slots - s0)
      const b = (await this.pack.readStackSlots(m.path, 'B', s0, n)).toFloat32() // [n, out, Rp]
      const block = new Float32Array(n * per)
      for (let s = 0; s < n; s++) {
        const k = scaling[s0 + s]!
        for (let o = 0; o < m.out; o++) for (let c = 0; c < Rp; c++) block[s * per + o * R + c] = k * b[(s * m.out + o) * Rp + c]!
      }
      write(s0 * per, block)
    }
  }

  close(): Promise<void> {
    return this.pack.close()
  }
}
