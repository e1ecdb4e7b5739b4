/**
 * `lora pack`: N PEFT LoRA adapters → one `lora-pack` safetensors file with,
 * per base module P, A stacked [S, R, in], B stacked [S, out, R] and the
 * scalings [S] (S = N + 1, slot 0 all zeros).
 *
 * Two passes: every adapter's header is read to plan the file (modules, R,
 * dims checks, dtype: `read-headers.ts`, `pack-plan.ts`); then the output is
 * created preallocated (zeros) and each adapter file is read once, front to
 * back, hashed, and its blocks put in place with positional writes
 * (`copy-sources.ts`). Memory is bounded by constants (chunk pool, two slot
 * batches), not by the pack; the output appears under its name only when complete.
 */
import {performance} from 'node:perf_hooks'
import {DTYPES} from '../dtype.js'
import type {DType, FloatOutputDType} from '../dtype.js'
import {assertDiskFits} from '../io/resources.js'
import {shapeSize} from '../shape.js'
import {InputError} from '../errors.js'
import {SAFETENSORS_MAX_HEADER_BYTES, sanitizeName} from '../formats/safetensors-header.js'
import {SafetensorsWriter} from '../formats/safetensors-writer.js'
import {checkOutputs} from '../io/output-target.js'
import type {ProgressCallback} from '../progress.js'
import {copySources, sourceFiles} from './copy-sources.js'
import {PACK_FORMAT, PACK_FORMAT_VERSION, PackManifest, serializeManifest} from '../formats/pack-manifest.js'
import {packTensorNames} from '../formats/pack-file.js'
import {planPack} from './pack-plan.js'
import {AdapterHeaders, NamesFrom, readAdapterHeaders} from './read-headers.js'
import {resolveAdapterInputs} from './resolve-inputs.js'

export type {NamesFrom} from './read-headers.js'

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
  /** Bytes of slots gathered before one write per tensor (default `PACK_BATCH_BYTES`; tests make it small to reach the direct path). */
  batchBytes?: number
  /** Bytes read from a source file at a time (default `SOURCE_CHUNK_BYTES`). */
  chunkBytes?: number
  /** Hash on a worker thread (default: when the sources total at least `WORKER_HASH_MIN_BYTES`). */
  hashInWorker?: boolean
}

/** Sources at least this large are hashed on a worker thread (starting one costs about 50 ms). */
export const WORKER_HASH_MIN_BYTES = 64 * 1024 * 1024

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

/**
 * Pack adapters into one file.
 * @throws InputError / UsageError (nothing is written) for missing or malformed
 *   adapters, DoRA, globs matching nothing, dims that differ between adapters,
 *   mixed bases without `allowMixedBase`, duplicate names, an existing output without `force`
 */
export async function packAdapters(options: PackAdaptersOptions): Promise<PackResult> {
  const started = performance.now()
  const dirs = await resolveAdapterInputs({inputs: options.inputs, list: options.list, cwd: options.cwd})
  await checkOutputs([{path: options.out, kind: 'file', flag: '--out'}], {force: options.force, inputs: [...dirs, options.list], cwd: options.cwd})
  const namesFrom = options.namesFrom ?? 'dir'
  let read: AdapterHeaders | undefined = await readAdapterHeaders(dirs, namesFrom, options.onProgress)
  const N = read.headers.length
  const bytesIn = read.bytes
  const plan = planPack(read.headers, {dtype: options.dtype, allowMixedBase: options.allowMixedBase})
  const warnings = [...plan.warnings, ...read.warnings]
  const withExtras = read.headers.filter((h) => h.extraTensors.length > 0)
  if (withExtras.length > 0) {
    const count = withExtras.reduce((s, h) => s + h.extraTensors.length, 0)
    warnings.push(
      `${withExtras.length} adapter${withExtras.length > 1 ? 's have' : ' has'} ${count} ${count > 1 ? 'tensors that are not LoRA pairs' : 'tensor that is not a LoRA pair'} (modules_to_save or heads, e.g. "${sanitizeName(withExtras[0]!.extraTensors[0]!)}" in "${sanitizeName(withExtras[0]!.name)}"): not packed, since full weights cannot be routed per request; the manifest lists them`,
    )
  }
  const S = plan.manifest.slots
  const scalings = new Map(plan.manifest.modules.map((m) => [m.name, new Float32Array(S)]))
  for (const [i, header] of read.headers.entries()) for (const m of header.modules) scalings.get(m.name)![i + 1] = m.scaling
  const files = sourceFiles(plan.manifest, read.headers, read.sources)
  read = undefined // the per-module details of every adapter are not needed any more: let them go

  const metadata = (manifest: PackManifest) => ({format: PACK_FORMAT, format_version: PACK_FORMAT_VERSION, manifest: serializeManifest(manifest)})
  assertDiskFits([{path: options.out, bytes: plan.specs.reduce((s, t) => s + shapeSize(t.shape) * DTYPES[t.dtype].bytes, 0), what: `the pack of ${N} adapters`}], `pack ${options.out}`)
  const writer = await SafetensorsWriter.create(options.out, plan.specs, {metadata: metadata(plan.manifest), force: options.force})
  try {
    const headerBytes = writer.plan.dataStart - 8
    if (headerBytes > SAFETENSORS_MAX_HEADER_BYTES) {
      throw new InputError(
        'PACK_HEADER_TOO_LARGE',
        `pack: the manifest of ${N} adapters makes a ${headerBytes}-byte header, over the ${SAFETENSORS_MAX_HEADER_BYTES}-byte limit safetensors readers accept; pack fewer adapters per file`,
      )
    }
    const hashes = await copySources(writer, plan.manifest, files, {
      batchBytes: options.batchBytes,
      chunkBytes: options.chunkBytes,
      hashInWorker: options.hashInWorker ?? bytesIn >= WORKER_HASH_MIN_BYTES,
      onProgress: options.onProgress,
    })
    for (const m of plan.manifest.modules) await writer.writeTensor(packTensorNames(m).scaling, scalings.get(m.name)!)
    const manifest: PackManifest = {...plan.manifest, adapters: plan.manifest.adapters.map((a, i) => ({...a, sha256: hashes[i]!}))}
    await writer.rewriteMetadata(metadata(manifest))
    await writer.commit()
  } catch (error) {
    await writer.abort()
    throw error
  }
  return {
    out: writer.path,
    adapters: N,
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
