/**
 * A `ModuleSource` over one module of a `lora-pack` file: the adapters that
 * target it, read by slot ranges from the stacked tensors and converted to
 * float32. Rank padding is zeroed on read (a pack stores zeros there, but
 * the file is input and is not trusted to).
 */
import {toFloat32} from '../dtype.js'
import type {PackFile} from '../pack/pack-file.js'
import type {PackModuleEntry} from '../pack/manifest.js'
import type {AdapterChunk, ModuleAdapter, ModuleSource} from './module-source.js'

/** The module's adapters (slot, rank, exact scaling from the manifest), in slot order. */
export function moduleAdapters(pack: PackFile, module: string): ModuleAdapter[] {
  const out: ModuleAdapter[] = []
  for (const a of pack.adapters) {
    const own = a.modules.find((m) => m.name === module)
    if (own) out.push({slot: a.slot, r: own.r, scaling: own.scaling})
  }
  return out
}

export function packModuleSource(pack: PackFile, entry: PackModuleEntry): ModuleSource {
  const adapters = moduleAdapters(pack, entry.name)
  const {R, out} = entry
  const inDim = entry.in
  return {
    name: entry.name,
    kind: entry.kind,
    in: inDim,
    out,
    R,
    adapters,
    async read(start: number, count: number): Promise<AdapterChunk> {
      const a = new Float32Array(count * R * inDim)
      const b = new Float32Array(count * out * R)
      let t = 0
      while (t < count) {
        // A run of adapters whose slots are close enough to read as one range.
        const first = adapters[start + t]!.slot
        let end = t + 1
        while (end < count && adapters[start + end]!.slot - first < 2 * (end - t + 1)) end++
        const span = adapters[start + end - 1]!.slot - first + 1
        const as = toFloat32(pack.manifest.dtype, (await pack.readStackSlots(entry.name, 'A', first, span)).bytes)
        const bs = toFloat32(pack.manifest.dtype, (await pack.readStackSlots(entry.name, 'B', first, span)).bytes)
        for (let j = t; j < end; j++) {
          const {slot, r} = adapters[start + j]!
          const offset = slot - first
          a.set(as.subarray(offset * R * inDim, offset * R * inDim + r * inDim), j * R * inDim)
          for (let row = 0; row < out; row++) {
            const src = (offset * out + row) * R
            b.set(bs.subarray(src, src + r), (j * out + row) * R)
          }
        }
        t = end
      }
      return {a, b}
    },
  }
}
