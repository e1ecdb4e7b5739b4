/**
 * The `pack` part of `lora inspect` for a `lora-pack` file: manifest, slots,
 * per-module R, and where the bytes go (adapter values, rank padding, empty
 * slots, the null slot 0), from the header alone.
 */
import {DTYPES} from '../dtype.js'
import type {SafetensorsFile} from '../formats/safetensors-file.js'
import type {PackManifest} from '../formats/pack-manifest.js'
import {PackFile} from '../formats/pack-file.js'

export interface PackModuleSummary {
  name: string
  kind: 'linear' | 'embedding'
  in: number
  out: number
  R: number
  /** Adapters that target this module. */
  adapters: number
  /** Smallest and largest adapter rank here. */
  r_min: number
  r_max: number
  /** Bytes of its A and B stacks. */
  bytes: number
  /** Bytes of those stacks that hold zeros (rank padding + empty slots + slot 0). */
  padding_bytes: number
}

/** Where the stacked bytes of a pack go; every share is of the whole file. */
export interface PackBytes {
  file: number
  /** The 8-byte length and the JSON header (manifest included). */
  header: number
  /** A and B stacks. */
  stacks: number
  /** The F32 scaling vectors. */
  scaling: number
  /** Adapter values: Σ r·(in + out) per adapter and module. */
  adapter_values: number
  /** Zeros in targeted slots beyond the adapter's own rank (R − r). */
  rank_padding: number
  /** Zeros in slots of adapters that do not target the module. */
  empty_slots: number
  /** Slot 0, the null adapter. */
  null_slot: number
  /** rank_padding + empty_slots + null_slot. */
  padding: number
  /** padding / file. */
  padding_share: number
  rank_padding_share: number
  empty_slots_share: number
  null_slot_share: number
}

export type PackSummary = {
  format: string
  format_version: string
  tool: string
  tool_version: string
  dtype: string
  /** S = N + 1 */
  slots: number
  adapters: number
  base_model_name_or_path: string | null
  modules: PackModuleSummary[]
  bytes: PackBytes
  manifest: PackManifest
}

/** Byte accounting of a manifest's stacks (header size and file size come from the file). */
export function packByteAccounting(manifest: PackManifest): {modules: PackModuleSummary[]; stacks: number; scaling: number; adapterValues: number; rankPadding: number; emptySlots: number; nullSlot: number} {
  const size = DTYPES[manifest.dtype].bytes
  const perModule = new Map(manifest.modules.map((m) => [m.name, {adapters: 0, used: 0, rMin: Infinity, rMax: 0}]))
  for (const a of manifest.adapters) {
    for (const am of a.modules) {
      const t = perModule.get(am.name)!
      t.adapters++
      t.used += am.r
      t.rMin = Math.min(t.rMin, am.r)
      t.rMax = Math.max(t.rMax, am.r)
    }
  }
  let stacks = 0
  let adapterValues = 0
  let rankPadding = 0
  let emptySlots = 0
  let nullSlot = 0
  const modules = manifest.modules.map((m) => {
    const t = perModule.get(m.name)!
    const width = (m.in + m.out) * size
    const bytes = manifest.slots * m.R * width
    const values = t.used * width
    stacks += bytes
    adapterValues += values
    rankPadding += (t.adapters * m.R - t.used) * width
    emptySlots += (manifest.slots - 1 - t.adapters) * m.R * width
    nullSlot += m.R * width
    return {name: m.name, kind: m.kind, in: m.in, out: m.out, R: m.R, adapters: t.adapters, r_min: t.adapters ? t.rMin : 0, r_max: t.rMax, bytes, padding_bytes: bytes - values}
  })
  return {modules, stacks, scaling: manifest.modules.length * manifest.slots * 4, adapterValues, rankPadding, emptySlots, nullSlot}
}

/**
 * Summarize an open `lora-pack` file (checks it as `PackFile.open` does).
 * @throws InputError for a malformed pack
 */
export function summarizePack(file: SafetensorsFile): PackSummary {
  const pack = PackFile.fromFile(file)
  const m = pack.manifest
  const acc = packByteAccounting(m)
  const padding = acc.rankPadding + acc.emptySlots + acc.nullSlot
  const share = (n: number) => (file.bytes === 0 ? 0 : n / file.bytes)
  return {
    format: file.metadata.get('format')!,
    format_version: file.metadata.get('format_version')!,
    tool: m.tool,
    tool_version: m.tool_version,
    dtype: m.dtype,
    slots: m.slots,
    adapters: m.adapters.length,
    base_model_name_or_path: m.base_model_name_or_path,
    modules: acc.modules,
    bytes: {
      file: file.bytes,
      header: file.dataStart,
      stacks: acc.stacks,
      scaling: acc.scaling,
      adapter_values: acc.adapterValues,
      rank_padding: acc.rankPadding,
      empty_slots: acc.emptySlots,
      null_slot: acc.nullSlot,
      padding,
      padding_share: share(padding),
      rank_padding_share: share(acc.rankPadding),
      empty_slots_share: share(acc.emptySlots),
      null_slot_share: share(acc.nullSlot),
    },
    manifest: m,
  }
}
