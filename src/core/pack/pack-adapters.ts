/**
 * `lora pack`: N PEFT LoRA adapters → one `lora-pack` safetensors file with,
 * per base module P, A stacked [S, R, in], B stacked [S, out, R] and the
 * scalings [S] (S = N + 1, slot 0 all zeros).
 *
 * Two passes: every adapter's header is read to plan the file (modules, R,
 * dims checks, dtype); then the output is created preallocated (zeros) and
 * each adapter file is read once, front to back, hashed, and its blocks put
 * in place with positional writes. Memory is bounded by one adapter's chunk,
 * not by the pack; the output appears under its name only when complete.
 */
import {stat} from 'node:fs/promises'
import {performance} from 'node:perf_hooks'
import type {DType, FloatOutputDType} from '../dtype.js'
import {InputError} from '../errors.js'
import {LoraAdapter} from '../formats/peft-adapter.js'
import {SAFETENSORS_MAX_HEADER_BYTES, planFile, sanitizeName} from '../formats/safetensors-header.js'
import {SafetensorsWriter} from '../formats/safetensors-writer.js'
import {assertOutputFree} from '../io/atomic-output.js'
import type {ProgressCallback} from '../progress.js'
import {PACK_FORMAT, PACK_FORMAT_VERSION, PackManifest, serializeManifest} from './manifest.js'
import {AdapterHeader, planPack} from './pack-plan.js'
import {PieceSink, SourceFile, SourcePiece, SourceReader} from './source-reader.js'
import {SlotBatch, slotBytes, writeSlotBlock} from './slot-batch.js'
import {packTensorNames} from './pack-file.js'
import {resolveAdapterInputs} from './resolve-inputs.js'
import {BackgroundHasher, inlineHash} from '../io/background-hash.js'

export type NamesFrom = 'dir' | 'config'

export interface PackAdaptersOptions {
  /** Adapter folders, folders of adapter folders, or globs. */
  inputs: readonly string[]
  /** A file with one adapter path (or glob) per line. */
  list?: string
  /** The output `.safetensors` file. */
  out: string
  /** Stored dtype; default: the adapters' common dtype (F32 when they differ). */
  dtype?: FloatOutputDType
  /** Adapter names: the folder's name (default) or the config's `adapter_name` / `name`. */
  namesFrom?: NamesFrom
  /** Accept adapters whose `base_model_name_or_path` differ. */
  allowMixedBase?: boolean
  /** Replace an existing output. */
  force?: boolean
  /** Relative inputs resolve against this (default: the process's working folder). */
  cwd?: string
  onProgress?: ProgressCallback
  /** Bytes of slots gathered before one write per tensor (default `PACK_BATCH_BYTES`; tests make it small). */
  batchBytes?: number
  /** Bytes read from a source file at a time (default `SOURCE_CHUNK_BYTES`). */
  chunkBytes?: number
  /** Hash on a worker thread (default: when the sources total at least `WORKER_HASH_MIN_BYTES`). */
  hashInWorker?: boolean
}

/** Sources at least this large are hashed on a worker thread (starting one costs about 50 ms). */
export const WORKER_HASH_MIN_BYTES = 64 * 1024 * 1024

/** Slots are gathered up to this many bytes and written with one write per tensor; two batches at most are in memory. */
export const PACK_BATCH_BYTES = 16 * 1024 * 1024

/** The `--json` result of `lora pack`. */
export interface PackResult {
  out: string
  /** N */
  adapters: number
  /** S = N + 1 */
  slots: number
  modules: number
  dtype: DType
  /** Sum of the source `adapter_model.safetensors` sizes. */
  bytes_in: number
  bytes_out: number
  /** Bytes of the A/B stacks holding zeros rather than adapter values: slot 0, empty slots, rank padding. */
  padding_bytes: number
  seconds: number
  warnings: string[]
}

/** An adapter's name in the pack under `namesFrom`. */
function adapterName(adapter: LoraAdapter, namesFrom: NamesFrom): string {
  if (namesFrom === 'dir') return adapter.name
  const raw = adapter.config.raw
  const name = typeof raw.adapter_name === 'string' ? raw.adapter_name : typeof raw.name === 'string' ? raw.name : undefined
  if (name === undefined || name.length === 0) {
    throw new InputError('PACK_NO_CONFIG_NAME', `read ${adapter.dir}/adapter_config.json: no "adapter_name" or "name" string to take the adapter's name from (use --names-from dir)`)
  }
  return name
}

/** Read one adapter's config and header: what planning and copying need. */
async function readAdapter(dir: string, namesFrom: NamesFrom): Promise<{header: AdapterHeader; source: Omit<SourceFile, 'pieces'> & {dataStart: number; tensors: Map<string, [number, number]>}; bytes: number; warnings: readonly string[]}> {
  const adapter = await LoraAdapter.load(dir)
  try {
    const file = adapter.file
    const info = await stat(file.path)
    const modules = [...adapter.modules.values()].sort((a, b) => file.info(a.aKey).dataOffsets[0] - file.info(b.aKey).dataOffsets[0])
    const tensors = new Map<string, [number, number]>()
    for (const m of modules) for (const key of [m.aKey, m.bKey]) tensors.set(key, [...file.info(key).dataOffsets])
    const metadata: Record<string, string> = Object.create(null)
    for (const [k, v] of file.metadata) metadata[k] = v
    return {
      header: {name: adapterName(adapter, namesFrom), dir: adapter.dir, config: adapter.config, modules, extraTensors: adapter.extraTensors.map((t) => t.name), metadata},
      source: {path: file.path, size: file.bytes, mtimeMs: info.mtimeMs, dataStart: file.dataStart, tensors},
      bytes: file.bytes,
      warnings: adapter.warnings,
    }
  } finally {
    await adapter.close()
  }
}

/** Group identical warnings of many adapters into one line each. */
function groupWarnings(perAdapter: ReadonlyArray<{name: string; warnings: readonly string[]}>): string[] {
  const groups = new Map<string, string[]>()
  for (const a of perAdapter) {
    for (const w of a.warnings) {
      if (/not LoRA pairs|modules_to_save wrapper/.test(w)) continue // reported once below, with what pack does about it
      groups.set(w, [...(groups.get(w) ?? []), a.name])
    }
  }
  return [...groups].map(([w, names]) => `adapter "${sanitizeName(names[0]!)}"${names.length > 1 ? ` and ${names.length - 1} more` : ''}: ${w}`)
}

/**
 * Pack adapters into one file.
 * @throws InputError / UsageError (nothing is written) for missing or malformed
 *   adapters, DoRA, globs matching nothing, dims that differ between adapters,
 *   mixed bases without `allowMixedBase`, duplicate names, an existing output without `force`
 */
export async function packAdapters(options: PackAdaptersOptions): Promise<PackResult> {
  const started = performance.now()
  await assertOutputFree(options.out, options.force)
  const dirs = await resolveAdapterInputs({inputs: options.inputs, list: options.list, cwd: options.cwd})
  const namesFrom = options.namesFrom ?? 'dir'
  const headers: AdapterHeader[] = []
  const sources: Array<Awaited<ReturnType<typeof readAdapter>>['source']> = []
  const perAdapterWarnings: Array<{name: string; warnings: readonly string[]}> = []
  const names = new Map<string, string>()
  let bytesIn = 0
  for (const [i, dir] of dirs.entries()) {
    const read = await readAdapter(dir, namesFrom)
    const previous = names.get(read.header.name)
    if (previous !== undefined) {
      throw new InputError(
        'PACK_DUPLICATE_NAME',
        `pack: adapters ${previous} and ${read.header.dir} are both named "${sanitizeName(read.header.name)}" (names must be unique: rename a folder${namesFrom === 'dir' ? ' or use --names-from config' : ''})`,
      )
    }
    names.set(read.header.name, read.header.dir)
    headers.push(read.header)
    sources.push(read.source)
    perAdapterWarnings.push({name: read.header.name, warnings: read.warnings})
    bytesIn += read.bytes
    options.onProgress?.({stage: 'headers', done: i + 1, total: dirs.length})
  }

  const plan = planPack(headers, {dtype: options.dtype, allowMixedBase: options.allowMixedBase})
  const warnings = [...plan.warnings, ...groupWarnings(perAdapterWarnings)]
  const withExtras = headers.filter((h) => h.extraTensors.length > 0)
  if (withExtras.length > 0) {
    const count = withExtras.reduce((s, h) => s + h.extraTensors.length, 0)
    warnings.push(
      `${withExtras.length} adapter${withExtras.length > 1 ? 's have' : ' has'} ${count} ${count > 1 ? 'tensors that are not LoRA pairs' : 'tensor that is not a LoRA pair'} (modules_to_save or heads, e.g. "${sanitizeName(withExtras[0]!.extraTensors[0]!)}" in "${sanitizeName(withExtras[0]!.name)}"): not packed, since full weights cannot be routed per request; the manifest lists them`,
    )
  }
  const metadata = (manifest: PackManifest) => ({format: PACK_FORMAT, format_version: PACK_FORMAT_VERSION, manifest: serializeManifest(manifest)})
  const headerBytes = planFile(plan.specs, metadata(plan.manifest)).dataStart - 8
  if (headerBytes > SAFETENSORS_MAX_HEADER_BYTES) {
    throw new InputError(
      'PACK_HEADER_TOO_LARGE',
      `pack: the manifest of ${headers.length} adapters makes a ${headerBytes}-byte header, over the ${SAFETENSORS_MAX_HEADER_BYTES}-byte limit safetensors readers accept; pack fewer adapters per file`,
    )
  }

  const S = plan.manifest.slots
  const dtype = plan.manifest.dtype
  const moduleByName = new Map(plan.manifest.modules.map((m) => [m.name, m]))
  const scalings = new Map(plan.manifest.modules.map((m) => [m.name, new Float32Array(S)]))
  const sourceFiles: SourceFile[] = headers.map((header, i) => {
    const src = sources[i]!
    const pieces: SourcePiece[] = []
    for (const m of header.modules) {
      scalings.get(m.name)![i + 1] = m.scaling
      for (const [role, key] of [['A', m.aKey], ['B', m.bKey]] as const) {
        const [begin, end] = src.tensors.get(key)!
        pieces.push({begin: src.dataStart + begin, end: src.dataStart + end, module: moduleByName.get(m.name)!, role, r: m.r, dtype: m.dtype})
      }
    }
    return {path: src.path, size: src.size, mtimeMs: src.mtimeMs, pieces: pieces.sort((a, b) => a.begin - b.begin)}
  })
  // small slots are gathered in batches written with one write per tensor; a slot larger than a batch is written directly
  const perSlot = slotBytes(plan.manifest.modules, dtype)
  const batchBytes = options.batchBytes ?? PACK_BATCH_BYTES
  const direct = perSlot > batchBytes
  const batchSlots = direct ? 1 : Math.max(1, Math.floor(batchBytes / perSlot))
  const writer = await SafetensorsWriter.create(options.out, plan.specs, {metadata: metadata(plan.manifest), force: options.force})
  let batch = new SlotBatch(moduleByName, dtype, 1, Math.min(batchSlots, S - 1))
  let flushing: Promise<void> = Promise.resolve()
  let writes: Promise<void> = Promise.resolve()
  let next: SourceReader | undefined = sourceFiles.length > 0 ? SourceReader.start(sourceFiles[0]!, options.chunkBytes) : undefined
  const hasher = options.hashInWorker ?? bytesIn >= WORKER_HASH_MIN_BYTES ? new BackgroundHasher() : undefined
  // the disk writes what is copied while copying goes on, so the final flush has little left (one sync at a time)
  let syncing: Promise<void> | undefined
  const syncInBackground = () => {
    if (syncing) return
    syncing = writer.sync().finally(() => (syncing = undefined))
    syncing.catch(() => undefined)
  }
  try {
    const digests: Array<Promise<string>> = []
    for (let i = 0; i < sourceFiles.length; i++) {
      const slot = i + 1
      const reader = next!
      next = i + 1 < sourceFiles.length ? SourceReader.start(sourceFiles[i + 1]!, options.chunkBytes) : undefined
      try {
        const sink: PieceSink = direct
          ? (p, bytes) => writeSlotBlock(writer, p.module, p.role, slot, p.r, p.dtype, dtype, bytes)
          : (p, bytes) => batch.place(p.module.name, p.role, slot, p.r, p.dtype, bytes)
        const hash = hasher ? hasher.stream() : inlineHash()
        const copied = await reader.copy(sink, hash, writes)
        const digest = hash.digest()
        digest.catch(() => undefined)
        digests.push(digest)
        writes = copied.done
        if (direct) writes.then(syncInBackground, () => undefined)
      } finally {
        await reader.close()
      }
      if (!direct && slot === batch.start + batch.count - 1) {
        await flushing // at most two batches in memory: one being written, one being filled
        flushing = batch.flush(writer)
        flushing.then(syncInBackground, () => undefined)
        batch = new SlotBatch(moduleByName, dtype, slot + 1, Math.min(batchSlots, S - 1 - slot))
      }
      options.onProgress?.({stage: 'adapters', done: slot, total: sourceFiles.length})
    }
    await flushing
    await writes
    const hashes = await Promise.all(digests)
    for (const m of plan.manifest.modules) await writer.writeTensor(packTensorNames(m).scaling, scalings.get(m.name)!)
    const manifest: PackManifest = {...plan.manifest, adapters: plan.manifest.adapters.map((a, i) => ({...a, sha256: hashes[i]!}))}
    await writer.rewriteMetadata(metadata(manifest))
    await syncing
    await writer.commit()
  } catch (error) {
    await next?.close()
    await Promise.allSettled([flushing, writes, syncing])
    await writer.abort()
    throw error
  } finally {
    await hasher?.close()
  }
  return {
    out: writer.path,
    adapters: headers.length,
    slots: S,
    modules: plan.manifest.modules.length,
    dtype: plan.manifest.dtype,
    bytes_in: bytesIn,
    bytes_out: writer.plan.fileSize,
    padding_bytes: plan.paddingBytes,
    seconds: (performance.now() - started) / 1000,
    warnings,
  }
}
