/**
 * Where the shared-B form's numbers come from, in the layout of
 * `serve/lora-layout.ts` (`L{l}.{g}.Ak [S, G·W, in]`, `L{l}.{p}.Bk [W, out]`,
 * W = the largest K of any module; a module with a smaller K has zero rows
 * past its K in both):
 * - synthetic (seeded), K = `--shared-k` for every module;
 * - a `lora-pack-shared-b` file (`--shared-b`, with the `--pack` it was
 *   compressed from): its stored A' and U, K per module as the file has it;
 * - the pack itself (`--pack` without `--shared-b`): compressed in memory with
 *   the compress core at K = `--shared-k` (clamped per module to its useful
 *   rank min(out, Σr), as `lora compress --rank` does), stored as f32.
 */
import {DTYPES} from '../../dtype.js'
import {InputError, UsageError} from '../../errors.js'
import {MatMulEngine} from '../../linalg/matmul-engine.js'
import {GroupSpec, ModuleSpec, StackDims, moduleSpecs} from '../lora-layout.js'
import {PackFile} from '../../formats/pack-file.js'
import {storeModule} from '../../compress/compress-module.js'
import {packModuleSource} from '../../compress/pack-module-source.js'
import {maxUsefulRank} from '../../compress/rank-selection.js'
import {SharedBFile, sharedBTensorNames} from '../../formats/shared-b-file.js'
import type {ElementWriter} from './weight-sources.js'
import {fillSynthetic} from './weight-sources.js'

/** Bytes of shared-B file data read per chunk of slots. */
const CHUNK_BYTES = 64 * 1024 * 1024

/** Where the values came from (`config.shared_b.source`). */
export type SharedSourceKind = 'synthetic' | 'file' | 'compressed'

/** Relative errors ‖ΔW − U·A'‖/‖ΔW‖ of the compressed adapters, over every (adapter, module) pair. */
export interface SharedErrors {
  mean: number
  max: number
}

/** A source of the shared-B form, written module by module into the layout. */
export interface SharedSource {
  readonly kind: SharedSourceKind
  /** Padded width W (the largest K). */
  readonly width: number
  /** K of each adapted module, by module key (`L0.q_proj`). */
  readonly ranks: Record<string, number>
  /** Lines for the user (a file compressed from other adapters than the pack's, …). */
  readonly notes: string[]
  /** `[S, G·W, in]`: member j's A' in rows j·W…, zero past its K; scaling folded in. */
  writeGroupAk(group: GroupSpec, write: ElementWriter): Promise<void> | void
  /** `[W, out]`: Uᵀ, zero past the module's K. */
  writeModuleBk(module: ModuleSpec, write: ElementWriter): Promise<void> | void
  /** The compression errors of the written modules; null for synthetic weights. */
  errors(): SharedErrors | null
  close(): Promise<void>
}

function adapted(dims: StackDims): ModuleSpec[] {
  return moduleSpecs(dims).filter((m) => m.targeted)
}

/** `[out, K]` (U) → `[W, out]` (Uᵀ with zero rows past K). */
function transposePadded(u: Float32Array, out: number, k: number, width: number): Float32Array {
  const bk = new Float32Array(width * out)
  for (let o = 0; o < out; o++) for (let c = 0; c < k; c++) bk[c * out + o] = u[o * k + c]!
  return bk
}

/** Seeded A' (std so ‖Uᵀ·A'‖ is about 5% of ‖W‖, as for synthetic adapters) and U, K for every module. */
export function syntheticShared(dims: StackDims, slots: number, k: number, seed: number): SharedSource {
  return {
    kind: 'synthetic',
    width: k,
    ranks: Object.fromEntries(adapted(dims).map((m) => [m.key, k])),
    notes: [],
    writeGroupAk(g, write) {
      const std = 0.05 / Math.sqrt(k * g.in)
      const slot = g.members.length * k * g.in
      for (let s = 1; s < slots; s++) fillSynthetic((o, d) => write(s * slot + o, d), slot, std, seed, 'Ak', g.key, s)
    },
    writeModuleBk(m, write) {
      fillSynthetic(write, k * m.out, 1, seed, 'Bk', m.key)
    },
    errors: () => null,
    async close() {},
  }
}

/**
 * Open a `lora-pack-shared-b` file as the shared form of `dims`: it must hold
 * as many slots as the pack at `packPath`, and every adapted module with the
 * model's dims. A file compressed from other adapters (names differ) is
 * served with a note.
 * @throws InputError naming the file and the mismatch
 */
export async function openSharedBFile(path: string, dims: StackDims, packPath: string): Promise<SharedSource> {
  const packFile = await PackFile.open(packPath)
  const pack = {path: packPath, slots: packFile.slots, names: packFile.adapters.map((a) => a.name)}
  await packFile.close()
  const file = await SharedBFile.open(path)
  try {
    const where = `read ${path}`
    const slots = file.manifest.slots
    if (slots !== pack.slots) {
      throw new InputError('SHARED_B_MISMATCH', `${where}: it holds ${slots - 1} adapters but the pack ${pack.path} holds ${pack.slots - 1} (--shared-b must be compressed from --pack)`)
    }
    const modules = adapted(dims)
    for (const m of modules) {
      const entry = file.modules.get(m.path)
      if (!entry) throw new InputError('SHARED_B_MISMATCH', `${where}: it has no module ${m.path}, which the pack ${pack.path} adapts (--shared-b must be compressed from --pack)`)
      if (entry.kind !== 'linear' || entry.in !== m.in || entry.out !== m.out) {
        throw new InputError('SHARED_B_MISMATCH', `${where}: module ${m.path} is ${entry.kind} [out ${entry.out}, in ${entry.in}] but the model has linear [out ${m.out}, in ${m.in}]`)
      }
    }
    const notes: string[] = []
    const differ = file.manifest.adapters.findIndex((a, i) => a.name !== pack.names[i])
    if (differ >= 0) notes.push(`the shared-b file ${path} was compressed from other adapters than the pack ${pack.path} holds (slot ${differ + 1}: "${file.manifest.adapters[differ]!.name}" vs "${pack.names[differ]}"); shared-b serves the file's adapters`)
    return new SharedBFileSource(file, modules, notes)
  } catch (error) {
    await file.close()
    throw error
  }
}

class SharedBFileSource implements SharedSource {
  readonly kind = 'file'
  readonly width: number
  readonly ranks: Record<string, number>

  constructor(
    private readonly file: SharedBFile,
    private readonly modules: readonly ModuleSpec[],
    readonly notes: string[],
  ) {
    this.ranks = Object.fromEntries(modules.map((m) => [m.key, file.ranks.get(m.path)!]))
    this.width = Math.max(...Object.values(this.ranks))
  }

  async writeGroupAk(g: GroupSpec, write: ElementWriter): Promise<void> {
    const W = this.width
    const S = this.file.manifest.slots
    const per = g.members.length * W * g.in
    const count = Math.max(1, Math.floor(CHUNK_BYTES / (per * 4)))
    for (let s0 = 0; s0 < S; s0 += count) {
      const n = Math.min(count, S - s0)
      const block = new Float32Array(n * per)
      for (const [j, m] of g.members.entries()) {
        const k = this.ranks[m.key]!
        const a = (await this.file.file.readRows(sharedBTensorNames(this.file.module(m.path)).a, s0, n)).toFloat32() // [n, K, in]
        for (let s = 0; s < n; s++) block.set(a.subarray(s * k * g.in, (s + 1) * k * g.in), s * per + j * W * g.in)
      }
      write(s0 * per, block)
    }
  }

  async writeModuleBk(m: ModuleSpec, write: ElementWriter): Promise<void> {
    const u = (await this.file.readSharedB(m.path)).toFloat32()
    write(0, transposePadded(u, m.out, this.ranks[m.key]!, this.width))
  }

  errors(): SharedErrors | null {
    const values: number[] = []
    for (const m of this.modules) for (const e of this.file.errors[m.path]!.errors) if (e !== null) values.push(e)
    return summarize(values)
  }

  close(): Promise<void> {
    return this.file.close()
  }
}

/**
 * The pack's adapters compressed in memory at K = `k` per module (each
 * module's K clamped to its useful rank), values stored as f32.
 * @throws UsageError when `k` exceeds a module's output dim
 */
export async function compressPackShared(packPath: string, dims: StackDims, k: number): Promise<SharedSource> {
  const pack = await PackFile.open(packPath)
  try {
    const ranks: Record<string, number> = {}
    for (const m of adapted(dims)) {
      const entry = pack.module(m.path)
      if (k > entry.out) throw new UsageError('BAD_FLAG', `--shared-k ${k} is larger than module ${m.path}'s output dim (out = ${entry.out}): its shared B [out, K] holds at most ${entry.out} orthonormal columns`)
      const rankSum = packModuleSource(pack, entry).adapters.reduce((s, a) => s + a.r, 0)
      ranks[m.key] = Math.min(k, maxUsefulRank({name: m.path, in: entry.in, out: entry.out, R: entry.R, rankSum, slots: pack.slots}))
    }
    return new CompressedPackSource(pack, ranks)
  } catch (error) {
    await pack.close()
    throw error
  }
}

class CompressedPackSource implements SharedSource {
  readonly kind = 'compressed'
  readonly width: number
  readonly notes: string[] = []
  private readonly engine = new MatMulEngine()
  /** U `[out, K]` (f32) of modules whose A' is written, until their Bk is. */
  private readonly bases = new Map<string, Float32Array>()
  private readonly errorValues: number[] = []

  constructor(
    private readonly pack: PackFile,
    readonly ranks: Record<string, number>,
  ) {
    this.width = Math.max(...Object.values(ranks))
  }

  async writeGroupAk(g: GroupSpec, write: ElementWriter): Promise<void> {
    const W = this.width
    const G = g.members.length
    for (const [j, m] of g.members.entries()) {
      const k = this.ranks[m.key]!
      const source = packModuleSource(this.pack, this.pack.module(m.path))
      const sink = {
        async restart() {},
        async write(start: number, count: number, bytes: Uint8Array) {
          const values = new Float32Array(bytes.slice().buffer) // [count, K, in]
          for (let t = 0; t < count; t++) {
            const slot = source.adapters[start + t]!.slot
            write((slot * G * W + j * W) * g.in, values.subarray(t * k * g.in, (t + 1) * k * g.in))
          }
        },
      }
      const c = await storeModule(source, k, {engine: this.engine, dtype: 'F32', inputBytesPerElement: DTYPES[this.pack.manifest.dtype].bytes, slots: this.pack.slots, sink})
      this.bases.set(m.key, new Float32Array(c.sharedB.slice().buffer))
      this.errorValues.push(...c.errors)
    }
  }

  writeModuleBk(m: ModuleSpec, write: ElementWriter): void {
    const u = this.bases.get(m.key)
    if (!u) throw new Error(`shared B of ${m.key} asked for before its group's A'`)
    this.bases.delete(m.key)
    write(0, transposePadded(u, m.out, this.ranks[m.key]!, this.width))
  }

  errors(): SharedErrors | null {
    return summarize(this.errorValues)
  }

  async close(): Promise<void> {
    await this.engine.release()
    await this.pack.close()
  }
}

function summarize(values: readonly number[]): SharedErrors {
  let sum = 0
  let max = 0
  for (const v of values) {
    sum += v
    max = Math.max(max, v)
  }
  return {mean: values.length > 0 ? sum / values.length : 0, max}
}
