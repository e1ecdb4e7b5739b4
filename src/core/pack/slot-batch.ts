/**
 * Write combining for packing: the blocks of consecutive slots are gathered
 * in memory, one buffer per stacked tensor, and each buffer goes to the file
 * in one positional write, because slots `start .. start+count-1` of
 * `P.lora_A` [S, R, in] (and of `P.lora_B` [S, out, R]) are contiguous. A
 * thousand small adapters then cost a few large writes per module instead of
 * two small writes per adapter and module. Zero padding (rank r < R, and
 * modules an adapter does not target) is part of the buffers, so it is
 * written as zeros over the preallocated zeros. The buffers are carved from
 * an arena the caller reuses batch after batch, so memory stays flat.
 */
import {DTYPES, DType, convertFloat} from '../dtype.js'
import type {SafetensorsWriter} from '../formats/safetensors-writer.js'
import type {PackModuleEntry} from '../formats/pack-manifest.js'
import {packTensorNames} from '../formats/pack-file.js'

/** Bytes one slot takes across every module's A and B stack (padding included). */
export function slotBytes(modules: readonly PackModuleEntry[], dtype: DType): number {
  const size = DTYPES[dtype].bytes
  return modules.reduce((sum, m) => sum + m.R * (m.in + m.out) * size, 0)
}

/** One module's gathered slots, and which of them an adapter has filled. */
interface ModuleBuffers {
  readonly a: Uint8Array
  readonly b: Uint8Array
  /** 1 where slot start+k holds an adapter's A (and B); the others are zeroed before writing. */
  readonly filled: Uint8Array
}

export class SlotBatch {
  private readonly buffers = new Map<string, ModuleBuffers>()
  private readonly size: number
  private used = 0

  /**
   * Slots `start .. start+count-1` of every module in `modules`, gathered in `arena`
   * (at least `count × slotBytes(...)` bytes; it may hold an earlier batch's bytes:
   * every byte written is either an adapter's or zeroed here).
   */
  constructor(
    private readonly modules: ReadonlyMap<string, PackModuleEntry>,
    private readonly dtype: DType,
    readonly start: number,
    readonly count: number,
    private readonly arena: Uint8Array,
  ) {
    this.size = DTYPES[dtype].bytes
  }

  private carve(bytes: number): Uint8Array {
    if (this.used + bytes > this.arena.byteLength) throw new RangeError(`a batch of ${this.count} slots does not fit its ${this.arena.byteLength}-byte arena`)
    const view = this.arena.subarray(this.used, this.used + bytes)
    this.used += bytes
    return view
  }

  private buffer(m: PackModuleEntry): ModuleBuffers {
    let b = this.buffers.get(m.name)
    if (!b) {
      b = {a: this.carve(this.count * m.R * m.in * this.size), b: this.carve(this.count * m.out * m.R * this.size), filled: new Uint8Array(this.count)}
      this.buffers.set(m.name, b)
    }
    return b
  }

  /**
   * Put one source tensor (A [r, in] or B [out, r], stored as `from`) into slot `slot`
   * (converted to the pack's dtype; rows r..R-1 of A and columns r..R-1 of B zeroed).
   */
  place(module: string, role: 'A' | 'B', slot: number, r: number, from: DType, bytes: Uint8Array): void {
    const m = this.modules.get(module)!
    const data = convertFloat(from, this.dtype, bytes)
    const k = slot - this.start
    const buffers = this.buffer(m)
    buffers.filled[k] = 1
    if (role === 'A') {
      const base = k * m.R * m.in * this.size
      buffers.a.set(data, base)
      if (r < m.R) buffers.a.fill(0, base + r * m.in * this.size, base + m.R * m.in * this.size)
      return
    }
    const base = k * m.out * m.R * this.size
    if (r === m.R) {
      buffers.b.set(data, base)
      return
    }
    const row = r * this.size
    const stride = m.R * this.size
    for (let i = 0; i < m.out; i++) {
      buffers.b.set(data.subarray(i * row, (i + 1) * row), base + i * stride)
      buffers.b.fill(0, base + i * stride + row, base + (i + 1) * stride)
    }
  }

  /** Zero the slots no adapter filled, then write every gathered buffer (modules no adapter of the batch targets stay as the preallocated zeros). */
  async flush(writer: SafetensorsWriter): Promise<void> {
    const writes: Array<Promise<void>> = []
    for (const [name, buffers] of this.buffers) {
      const m = this.modules.get(name)!
      const aSlot = m.R * m.in * this.size
      const bSlot = m.out * m.R * this.size
      for (let k = 0; k < this.count; k++) {
        if (buffers.filled[k]) continue
        buffers.a.fill(0, k * aSlot, (k + 1) * aSlot)
        buffers.b.fill(0, k * bSlot, (k + 1) * bSlot)
      }
      const names = packTensorNames(m)
      writes.push(writer.writeTensorBytes(names.a, this.start * aSlot, buffers.a))
      writes.push(writer.writeTensorBytes(names.b, this.start * bSlot, buffers.b))
    }
    this.buffers.clear()
    await Promise.all(writes)
  }
}

/**
 * Write one block straight into its slot (for adapters too large to gather in
 * a batch): A [r, in] at rows 0..r-1 of slot `slot`, B [out, r] as [out, R] with zero columns r..R-1.
 */
export function writeSlotBlock(
  writer: SafetensorsWriter,
  m: PackModuleEntry,
  role: 'A' | 'B',
  slot: number,
  r: number,
  from: DType,
  to: DType,
  bytes: Uint8Array,
): Promise<void> {
  const size = DTYPES[to].bytes
  const data = convertFloat(from, to, bytes)
  const names = packTensorNames(m)
  if (role === 'A') return writer.writeTensorBytes(names.a, slot * m.R * m.in * size, data)
  const offset = slot * m.out * m.R * size
  if (r === m.R) return writer.writeTensorBytes(names.b, offset, data)
  const padded = new Uint8Array(m.out * m.R * size)
  const row = r * size
  for (let i = 0; i < m.out; i++) padded.set(data.subarray(i * row, (i + 1) * row), i * m.R * size)
  return writer.writeTensorBytes(names.b, offset, padded)
}
