/**
 * Unpacking a `lora-pack-shared-b` file: one adapter as a PEFT
 * adapter folder whose delta is exactly the compressed one. Per module,
 * B = the shared basis [out, K], A = the adapter's A' [K, in], r = K and
 * lora_alpha = K (scaling 1, since A' has the scaling folded in), stored in
 * the file's dtype, so ΔW = B A is what serving the shared-B file computes.
 * Modules of different K get `rank_pattern` / `alpha_pattern` entries.
 */
import {resolve} from 'node:path'
import {AdapterTensor, writeAdapter} from '../formats/peft-adapter-writer.js'
import {ADAPTER_OUTPUT_KIND, checkOutputs} from '../io/output-target.js'
import {sourceKeys} from '../formats/pack-manifest.js'
import {UnpackOptions, UnpackResult, assertOneAdapter} from '../pack/unpack.js'
import {SharedBFile} from '../formats/shared-b-file.js'

/** A PEFT pattern key matching exactly one module path (dots escaped). */
export function exactPatternKey(module: string): string {
  return module.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')
}

/**
 * Write adapter `adapter` (or `slot`) of shared-B pack `file` as a PEFT folder `out`.
 * @throws UsageError unless exactly one of `adapter` / `slot` is given, or when `out` exists without `force`
 * @throws InputError for a malformed file or an unknown adapter / slot
 */
export async function unpackSharedB(options: UnpackOptions): Promise<UnpackResult> {
  assertOneAdapter(options)
  await checkOutputs([{path: options.out, kind: 'folder', folderKind: ADAPTER_OUTPUT_KIND, flag: '--out'}], {force: options.force, inputs: [options.file]})
  const file = await SharedBFile.open(options.file)
  try {
    await file.checkNullSlot()
    const entry = options.adapter !== undefined ? file.adapterByName(options.adapter) : file.adapterBySlot(options.slot!)
    const tensors: AdapterTensor[] = []
    const ranks = new Map<string, number>()
    let worst = {module: '', error: 0}
    for (const m of entry.modules) {
      const module = file.module(m.name)
      const K = file.ranks.get(m.name)!
      ranks.set(m.name, K)
      const a = await file.readA(m.name, entry.slot)
      const b = await file.readSharedB(m.name)
      const [aKey, bKey] = sourceKeys(entry, m, module.kind)
      tensors.push({name: aKey, dtype: file.dtype, shape: a.shape, data: a.bytes})
      tensors.push({name: bKey, dtype: file.dtype, shape: b.shape, data: b.bytes})
      const e = file.errors[m.name]!.errors[entry.slot]
      if (typeof e === 'number' && e >= worst.error) worst = {module: m.name, error: e}
    }
    // r = the most common K; other modules by exact-name patterns. alpha = r everywhere: scaling 1.
    const counts = new Map<number, number>()
    for (const k of ranks.values()) counts.set(k, (counts.get(k) ?? 0) + 1)
    const r = [...counts.entries()].sort((x, y) => y[1] - x[1] || y[0] - x[0])[0]?.[0] ?? 1
    const rankPattern: Record<string, number> = {}
    for (const [name, k] of ranks) if (k !== r) rankPattern[exactPatternKey(name)] = k
    const config = {...entry.config, r, lora_alpha: r, use_rslora: false, use_dora: false, rank_pattern: rankPattern, alpha_pattern: {...rankPattern}}
    await writeAdapter(options.out, config, tensors, {force: options.force, metadata: entry.safetensors_metadata})
    const warnings = [
      `"${entry.name}" comes from a shared-B compressed pack: its deltas are the compressed ones (largest relative error ${worst.error.toPrecision(3)}, on ${worst.module}), with r = K and the scaling folded into A`,
    ]
    if (entry.extra_tensors.length > 0) warnings.push(`${entry.extra_tensors.length} tensor(s) of the source (modules_to_save or heads) were never packed and are not in the unpacked adapter`)
    return {
      out: resolve(options.out),
      name: entry.name,
      slot: entry.slot,
      modules: entry.modules.length,
      dtype: file.dtype,
      bytes: tensors.reduce((s, t) => s + t.data.byteLength, 0),
      exact: false,
      warnings,
    }
  } finally {
    await file.close()
  }
}
