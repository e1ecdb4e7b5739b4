/**
 * Adapter stacks from a `lora pack` file (`--pack`): each module's
 * `lora_A [S, R_P, in]` and `lora_B [S, out, R_P]` (any float dtype) become
 * the bench layout, f32, fused A per group, scaling folded into B, every
 * module padded to the largest R_P of the targeted modules.
 */
import {InputError, UsageError} from '../../errors.js'
import {BLOCK_ARCHITECTURES, Role} from '../block-architectures.js'
import {GroupSpec, ModuleSpec, StackDims, moduleSpecs} from '../lora-layout.js'
import {PackFile} from '../../formats/pack-file.js'
import type {ElementWriter, StackSource} from './weight-sources.js'

/** Bytes of pack data read per chunk of slots. */
const CHUNK_BYTES = 64 * 1024 * 1024

/** What a pack says about the model: its block family, the widths its modules imply, the roles it adapts, N. */
export interface PackShape {
  adapters: number
  /** The block family its module names follow (`block-architectures.ts`). */
  architecture: string
  hidden?: number
  intermediate?: number
  /** q's output width (o's input) when the pack shows it. */
  attention?: number
  /** k's and v's output width when the pack shows it. */
  kv?: number
  layers: number
  targets: Role[]
}

/**
 * Read a pack's header: adapter count, and the block family, widths and
 * targets its module names and shapes imply (every layer the same).
 * @throws InputError PACK_NOT_LLAMA for a pack of no known block family; PACK_SHAPE_MISMATCH for shapes that form no block
 */
export async function readPackShape(path: string): Promise<PackShape> {
  const pack = await PackFile.open(path)
  try {
    const modules = [...pack.modules.values()].filter((m) => m.kind === 'linear')
    const arch = BLOCK_ARCHITECTURES.find((a) => modules.some((m) => a.match(m.name)))
    if (!arch) {
      throw new InputError('PACK_NOT_LLAMA', `read ${path}: the pack has no module of a decoder block the bench knows (${BLOCK_ARCHITECTURES.map((a) => a.path(0, a.roles[0]!)).join(', ')}, …)`)
    }
    const shapes = new Map<Role, [number, number]>()
    let layers = 0
    for (const m of modules) {
      const at = arch.match(m.name)
      if (!at) continue
      const known = shapes.get(at.role)
      if (known && (known[0] !== m.out || known[1] !== m.in)) {
        throw new InputError('PACK_SHAPE_MISMATCH', `read ${path}: ${at.role} is [out ${known[0]}, in ${known[1]}] in one layer and [out ${m.out}, in ${m.in}] in ${m.name}; the bench serves blocks of one shape`)
      }
      shapes.set(at.role, [m.out, m.in])
      layers = Math.max(layers, at.layer + 1)
    }
    const agree = (what: string, values: Array<number | undefined>): number | undefined => {
      const known = [...new Set(values.filter((v): v is number => v !== undefined))]
      if (known.length > 1) throw new InputError('PACK_SHAPE_MISMATCH', `read ${path}: the pack's modules disagree on the ${what} (${known.join(' vs ')})`)
      return known[0]
    }
    const get = (r: Role) => shapes.get(r)
    const hidden = agree('hidden size', [get('q_proj')?.[1], get('k_proj')?.[1], get('v_proj')?.[1], get('qkv_proj')?.[1], get('gate_proj')?.[1], get('up_proj')?.[1], get('o_proj')?.[0], get('down_proj')?.[0]])
    const intermediate = agree('intermediate size', [get('gate_proj')?.[0], get('up_proj')?.[0], get('down_proj')?.[1]])
    const fused = get('qkv_proj')
    if (fused && fused[0] % 3 !== 0) throw new InputError('PACK_SHAPE_MISMATCH', `read ${path}: the fused q/k/v ${arch.path(0, 'qkv_proj')} has ${fused[0]} outputs, not three equal parts`)
    const attention = agree('attention width (q out, o in)', [get('q_proj')?.[0], get('o_proj')?.[1], fused ? fused[0] / 3 : undefined])
    const kv = agree('key/value width (k and v out)', [get('k_proj')?.[0], get('v_proj')?.[0], fused ? fused[0] / 3 : undefined])
    if (attention !== undefined && kv !== undefined && attention % kv !== 0) {
      throw new InputError('PACK_SHAPE_MISMATCH', `read ${path}: k/v have ${kv} outputs, which do not divide q's ${attention} (grouped-query attention repeats whole key/value heads)`)
    }
    return {adapters: pack.slots - 1, architecture: arch.name, hidden, intermediate, attention, kv, layers, targets: arch.roles.filter((r) => shapes.has(r))}
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
