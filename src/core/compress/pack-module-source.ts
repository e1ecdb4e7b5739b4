/**
 * A `ModuleSource` over one module of a `lora-pack` file: the adapters that
 * target it, read by slot ranges from the stacked tensors and decoded to
 * float64. Rank padding is zeroed on read (a pack stores zeros there, but
 * the file is input and is not trusted to).
 */
import {floatDecoder} from '../dtype.js'
import type {PackFile} from '../formats/pack-file.js'
import type {PackModuleEntry} from '../formats/pack-manifest.js'
import {type AdapterChunk, type AdapterChunk64, type ModuleAdapter, type ModuleSource, cachedModuleSource} from './module-source.js'

/** The module's adapters (slot, rank, exact scaling from the manifest), in slot order. */
export function moduleAdapters(pack: PackFile, module: string): ModuleAdapter[] {
  const out: ModuleAdapter[] = []
  for (const a of pack.adapters) {
    const own = a.modules.find((m) => m.name === module)
    if (own) out.push({slot: a.slot, r: own.r, scaling: own.scaling})
  }
  return out
}

/** The module's adapters, read by slot ranges and decoded straight to float64 (kept in memory between passes when small enough: `cachedModuleSource`). */
export function packModuleSource(pack: PackFile, entry: PackModuleEntry): ModuleSource {
  const adapters = moduleAdapters(pack, entry.name)
  const {R, out} = entry
  const inDim = entry.in
  const dtype = pack.manifest.dtype
  const read64 = async (start: number, count: number): Promise<AdapterChunk64> => {
    const a = new Float64Array(count * R * inDim)
    const b = new Float64Array(count * out * R)
    let t = 0
    while (t < count) {
      // A run of adapters whose slots are close enough to read as one range.
      const first = adapters[start + t]!.slot
      let end = t + 1
      while (end < count && adapters[start + end]!.slot - first < 2 * (end - t + 1)) end++
      const span = adapters[start + end - 1]!.slot - first + 1
      const decodeA = floatDecoder(dtype, (await pack.readStackSlots(entry.name, 'A', first, span)).bytes)
      const decodeB = floatDecoder(dtype, (await pack.readStackSlots(entry.name, 'B', first, span)).bytes)
      for (let j = t; j < end; j++) {
        const {slot, r} = adapters[start + j]!
        const offset = slot - first
        decodeA(offset * R * inDim, r * inDim, a, j * R * inDim)
        if (r === R) decodeB(offset * out * R, out * R, b, j * out * R)
        else for (let row = 0; row < out; row++) decodeB((offset * out + row) * R, r, b, (j * out + row) * R)
      }
      t = end
    }
    return {a, b}
  }
  return cachedModuleSource({
    name: entry.name,
    kind: entry.kind,
    in: inDim,
    out,
    R,
    adapters,
    read64,
    async read(start, count): Promise<AdapterChunk> {
      const {a, b} = await read64(start, count)
      return {a: Float32Array.from(a), b: Float32Array.from(b)}
    },
  })
}
