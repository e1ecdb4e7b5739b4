/**
 * The `pack` part of `lora inspect` for a `lora-pack-shared-b` file, from the
 * header alone: per module K, bytes against the source pack's stacks, and the
 * measured errors stored in the header.
 */
import {DTYPES} from '../dtype.js'
import type {SafetensorsFile} from '../formats/safetensors-file.js'
import type {PackManifest} from '../formats/pack-manifest.js'
import {savingsPercent} from './rank-selection.js'
import {CompressionInfo, SharedBFile, sharedBTensorNames} from '../formats/shared-b-file.js'

export interface SharedBModuleSummary {
  name: string
  kind: 'linear' | 'embedding'
  in: number
  out: number
  /** R of the source pack. */
  R: number
  K: number
  adapters: number
  /** Bytes of `lora_A` + `lora_B_shared` here. */
  bytes: number
  /** Bytes of the source pack's A and B stacks of this module. */
  source_bytes: number
  savings_pct: number
  error_mean: number
  error_max: number
}

export type SharedBSummary = {
  format: string
  format_version: string
  dtype: string
  /** The dtype of the source pack's stacks. */
  source_dtype: string
  slots: number
  adapters: number
  base_model_name_or_path: string | null
  compression: CompressionInfo
  modules: SharedBModuleSummary[]
  bytes: {file: number; header: number; tensors: number; source_stacks: number; savings_pct: number}
  totals: {error_mean: number; error_max: number; worst_adapter: {name: string; slot: number; module: string; error: number} | null}
  manifest: PackManifest
}

/**
 * Summarize an open shared-B file (checked as `SharedBFile.open` does).
 * @throws InputError for a malformed file
 */
export function summarizeSharedB(file: SafetensorsFile): SharedBSummary {
  const shared = SharedBFile.fromFile(file)
  const m = shared.manifest
  const sourceSize = DTYPES[m.dtype].bytes
  let tensors = 0
  let sourceStacks = 0
  let sum = 0
  let count = 0
  let worst: SharedBSummary['totals']['worst_adapter'] = null
  const modules = m.modules.map((entry) => {
    const names = sharedBTensorNames(entry)
    const bytes = file.tensors.get(names.a)!.byteLength + file.tensors.get(names.b)!.byteLength
    const source = m.slots * entry.R * (entry.in + entry.out) * sourceSize
    tensors += bytes
    sourceStacks += source
    const {K, errors} = shared.errors[entry.name]!
    const values: number[] = []
    errors.forEach((e, slot) => {
      if (e === null) return
      values.push(e)
      sum += e
      count++
      if (worst === null || e > worst.error) worst = {name: m.adapters[slot - 1]?.name ?? `slot ${slot}`, slot, module: entry.name, error: e}
    })
    return {
      name: entry.name,
      kind: entry.kind,
      in: entry.in,
      out: entry.out,
      R: entry.R,
      K,
      adapters: values.length,
      bytes,
      source_bytes: source,
      savings_pct: savingsPercent(source, bytes),
      error_mean: values.length ? values.reduce((a, b) => a + b, 0) / values.length : 0,
      error_max: values.length ? Math.max(...values) : 0,
    }
  })
  return {
    format: file.metadata.get('format')!,
    format_version: file.metadata.get('format_version')!,
    dtype: shared.dtype,
    source_dtype: m.dtype,
    slots: m.slots,
    adapters: m.adapters.length,
    base_model_name_or_path: m.base_model_name_or_path,
    compression: shared.compression,
    modules,
    bytes: {file: file.bytes, header: file.dataStart, tensors, source_stacks: sourceStacks, savings_pct: savingsPercent(sourceStacks, tensors)},
    totals: {error_mean: count ? sum / count : 0, error_max: worst === null ? 0 : (worst as {error: number}).error, worst_adapter: worst},
    manifest: m,
  }
}
