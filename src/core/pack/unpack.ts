/**
 * Unpacking a `lora-pack` file: one adapter back to a PEFT adapter
 * folder. Each module's slot is cut back to the adapter's own rank and
 * written under the tensor name and in the dtype the source file had, with
 * the source's `adapter_config.json` and safetensors metadata, so the
 * result's tensors are byte-identical to the source's whenever the pack's
 * dtype holds the source dtype exactly (the same dtype, or F32 for F16/BF16).
 */
import {resolve} from 'node:path'
import {DType, convertFloat} from '../dtype.js'
import {UsageError} from '../errors.js'
import {AdapterTensor, writeAdapter} from '../formats/peft-adapter-writer.js'
import {ADAPTER_OUTPUT_KIND, checkOutputs} from '../io/output-target.js'
import {sanitizeName} from '../formats/safetensors-header.js'
import {sourceKeys} from '../formats/pack-manifest.js'
import {PackFile} from '../formats/pack-file.js'

export interface UnpackOptions {
  /** The pack file. */
  file: string
  /** Which adapter: by name … */
  adapter?: string
  /** … or by slot (1..N). */
  slot?: number
  /** The adapter folder to write. */
  out: string
  force?: boolean
}

export interface UnpackResult {
  out: string
  name: string
  slot: number
  modules: number
  /** The dtype written (the source adapter's). */
  dtype: DType
  /** Bytes of LoRA tensor data written. */
  bytes: number
  /** Whether the tensors are bit-for-bit the source adapter's (false when packing rounded them to a narrower dtype). */
  exact: boolean
  warnings: string[]
}

/**
 * Unpacking takes one adapter, by name or by slot.
 * @throws UsageError UNPACK_WHICH unless exactly one of `adapter` / `slot` is given
 */
export function assertOneAdapter(options: Pick<UnpackOptions, 'adapter' | 'slot'>): void {
  if ((options.adapter === undefined) === (options.slot === undefined)) {
    throw new UsageError('UNPACK_WHICH', 'unpack: give exactly one of --adapter NAME or --slot N')
  }
}

/** Whether every value of `from` is exactly a value of `to`. */
export function holdsExactly(to: DType, from: DType): boolean {
  if (to === from || to === 'F64') return true
  return to === 'F32' && (from === 'F16' || from === 'BF16' || from === 'F8_E4M3' || from === 'F8_E5M2')
}

/**
 * Write adapter `adapter` (or `slot`) of `lora-pack` file `file` as a PEFT folder `out`
 * (`unpackAdapter` in core/unpack.ts takes any packed format).
 * @throws UsageError unless exactly one of `adapter` / `slot` is given, or when `out` exists without `force`
 * @throws InputError for a malformed pack or an unknown adapter / slot
 */
export async function unpackPack(options: UnpackOptions): Promise<UnpackResult> {
  assertOneAdapter(options)
  await checkOutputs([{path: options.out, kind: 'folder', folderKind: ADAPTER_OUTPUT_KIND, flag: '--out'}], {force: options.force, inputs: [options.file]})
  const pack = await PackFile.open(options.file)
  try {
    await pack.checkNullSlot()
    const entry = options.adapter !== undefined ? pack.adapterByName(options.adapter) : pack.adapterBySlot(options.slot!)
    const packed = pack.manifest.dtype
    const tensors: AdapterTensor[] = []
    let exact = true
    for (const m of entry.modules) {
      const module = pack.module(m.name)
      const block = (await pack.readSlot(m.name, entry.slot))!
      const dtype = m.dtype ?? entry.dtype
      exact &&= holdsExactly(packed, dtype)
      const [aKey, bKey] = sourceKeys(entry, m, module.kind)
      tensors.push({name: aKey, dtype, shape: block.a.shape, data: convertFloat(packed, dtype, block.a.bytes)})
      tensors.push({name: bKey, dtype, shape: block.b.shape, data: convertFloat(packed, dtype, block.b.bytes)})
    }
    const warnings: string[] = []
    if (!exact) warnings.push(`the pack stores ${packed}, narrower than this adapter's ${entry.dtype}: its values were rounded when packed, so the unpacked tensors are not bit-identical to the source`)
    if (entry.extra_tensors.length > 0) {
      warnings.push(`${entry.extra_tensors.length} tensor${entry.extra_tensors.length > 1 ? 's' : ''} of the source (modules_to_save or heads, e.g. "${sanitizeName(entry.extra_tensors[0]!)}") were not packed and are not in the unpacked adapter`)
    }
    // the config's own bytes when the pack kept them: the folder is then byte-identical to the source
    await writeAdapter(options.out, entry.config, tensors, {force: options.force, metadata: entry.safetensors_metadata, configText: entry.config_text})
    return {
      out: resolve(options.out),
      name: entry.name,
      slot: entry.slot,
      modules: entry.modules.length,
      dtype: entry.dtype,
      bytes: tensors.reduce((s, t) => s + t.data.byteLength, 0),
      exact,
      warnings,
    }
  } finally {
    await pack.close()
  }
}
