/**
 * `lora compress`: a `lora-pack` file (or adapter folders, packed first) →
 * a `lora-pack-shared-b` file, with the report of what it saves and what it
 * costs; or, with `sweep`, the table of both over K without writing a file.
 *
 * Writing: K is chosen for every module first (`--max-error` measures dry
 * runs to do so), then the file is planned with those shapes and each
 * module's values are computed once more and written in chunks, and the
 * errors measured on exactly those values go into the header at the end
 * (the `errors` JSON has fixed-width numbers, so the header keeps its size).
 */
import {performance} from 'node:perf_hooks'
import {tmpdir} from 'node:os'
import {dirname, resolve} from 'node:path'
import {DTYPES, FloatOutputDType, FLOAT_OUTPUT_DTYPES} from '../dtype.js'
import {InputError, UsageError} from '../errors.js'
import {formatBytes} from '../units.js'
import {SAFETENSORS_MAX_HEADER_BYTES} from '../formats/safetensors-header.js'
import {SharedBPlan, SharedBWriter, sharedBLayout} from '../formats/shared-b-writer.js'
import {checkOutputs} from '../io/output-target.js'
import {assertDiskFits} from '../io/resources.js'
import {shapeSize} from '../shape.js'
import {MatMulEngine} from '../linalg/matmul-engine.js'
import type {PackFile} from '../formats/pack-file.js'
import type {ProgressCallback} from '../progress.js'
import {TOOL_NAME, toolVersion} from '../version.js'
import {CompressedModule, ModuleCompressOptions, RankChoice, chooseRank, maxOf, meanOf, storeModule, sweepModule} from './compress-module.js'
import {packModuleSource} from './pack-module-source.js'
import {RankSelection, bytesAfter, savingsPercent, sweepRanks, validateSelection} from './rank-selection.js'
import type {SharedBErrors} from '../formats/shared-b-file.js'
import {openInput, resolveCompressInput} from './open-input.js'
import type {BasisMethod} from './shared-basis.js'

export interface CompressInputOptions {
  /** A `lora-pack` file, or adapter folders / folders of adapters / globs. */
  inputs: readonly string[]
  /** Output dtype (default: the pack's, when it is F32, F16 or BF16; else F32). */
  dtype?: FloatOutputDType
  /** Weigh every adapter equally (unit-norm C_i). */
  normalize?: boolean
  /** Relative inputs resolve against this. */
  cwd?: string
  onProgress?: ProgressCallback
  /** For tests: force the eigensolver, the chunk size, the engine. */
  method?: BasisMethod
  chunk?: number
  engine?: MatMulEngine
}

export interface CompressFileOptions extends CompressInputOptions {
  out: string
  selection: RankSelection
  force?: boolean
  /** Write the file even when it is larger than the input pack (refused otherwise: the point of compressing is a smaller file). */
  allowGrowth?: boolean
}

/** One module of the report. */
export interface ModuleReport {
  name: string
  R: number
  K: number
  bytes_before: number
  bytes_after: number
  savings_pct: number
  error_mean: number
  error_max: number
}

export interface WorstAdapter {
  name: string
  slot: number
  module: string
  error: number
}

export interface ReportTotals {
  bytes_before: number
  bytes_after: number
  savings_pct: number
  /** Over every (adapter, module) pair in which the adapter targets the module. */
  error_mean: number
  error_max: number
  worst_adapter: WorstAdapter | null
}

export interface CompressReport {
  input: string
  out: string
  adapters: number
  slots: number
  input_dtype: string
  dtype: FloatOutputDType
  normalize: boolean
  selection: Record<string, number>
  modules: ModuleReport[]
  totals: ReportTotals
  seconds: number
  warnings: string[]
}

export interface SweepRow {
  K: number
  modules: ModuleReport[]
  totals: ReportTotals
}

export interface SweepReport {
  input: string
  adapters: number
  slots: number
  input_dtype: string
  dtype: FloatOutputDType
  normalize: boolean
  ranks: number[]
  sweep: SweepRow[]
  seconds: number
  warnings: string[]
}

/**
 * Compress into a `lora-pack-shared-b` file.
 * @throws UsageError for a bad selection, an existing output without `force`, a K no module can take
 * @throws InputError for an input that is neither a lora-pack nor adapters, or malformed
 */
export async function compressFile(options: CompressFileOptions): Promise<CompressReport> {
  const started = performance.now()
  validateSelection(options.selection)
  const out = resolve(options.cwd ?? process.cwd(), options.out)
  const resolved = await resolveCompressInput(options)
  await checkOutputs([{path: out, kind: 'file', flag: '--out'}], {force: options.force, inputs: resolved.kind === 'pack' ? [resolved.path] : resolved.dirs})
  const input = await openInput(resolved, dirname(out), options.onProgress)
  const engine = options.engine ?? new MatMulEngine()
  try {
    const {pack} = input
    const dtype = outputDType(pack, options.dtype)
    const moduleOptions = moduleOptionsOf(pack, dtype, engine, options)
    const entries = pack.manifest.modules
    const total = entries.length * 2
    // Pass 1: K per module (and, for --max-error, the basis that found it).
    const choices: RankChoice[] = []
    for (const [i, entry] of entries.entries()) {
      choices.push(await chooseRank(packModuleSource(pack, entry), options.selection, moduleOptions))
      options.onProgress?.({stage: 'modules', done: i + 1, total})
    }
    // Pass 2: plan the file, store every module, measure, then the errors go into the header.
    const plan: SharedBPlan = {
      manifest: pack.file.metadata.get('manifest')!,
      modules: entries.map((module, i) => ({module, K: choices[i]!.k})),
      slots: pack.slots,
      dtype,
      compression: {dtype, normalize: Boolean(options.normalize), selection: selectionRecord(options.selection), tool: TOOL_NAME, tool_version: toolVersion()},
    }
    const {headerBytes} = sharedBLayout(plan)
    if (headerBytes > SAFETENSORS_MAX_HEADER_BYTES) {
      throw new InputError('COMPRESS_HEADER_TOO_LARGE', `compress: the manifest and per-slot errors make a ${headerBytes}-byte header, over the ${SAFETENSORS_MAX_HEADER_BYTES}-byte limit; compress fewer adapters per file`)
    }
    const layout = sharedBLayout(plan)
    const outBytes = 8 + layout.headerBytes + layout.specs.reduce((s, t) => s + shapeSize(t.shape) * DTYPES[t.dtype].bytes, 0)
    if (outBytes > pack.file.bytes && !options.allowGrowth) {
      throw new UsageError(
        'COMPRESS_GROWS',
        `compress ${out}: at the K chosen (${describeKs(choices.map((c) => c.k))}) the shared-B file would be ${formatBytes(outBytes)}, ${(100 * (outBytes / pack.file.bytes - 1)).toFixed(0)}% larger than the input's ${formatBytes(pack.file.bytes)}; choose a smaller K (--rank, --savings) or pass --allow-growth`,
      )
    }
    assertDiskFits([{path: out, bytes: outBytes, what: 'the shared-B file'}], `compress ${out}`)
    const writer = await SharedBWriter.create(out, plan, {force: options.force})
    const modules: CompressedModule[] = []
    try {
      for (const [i, entry] of entries.entries()) {
        const source = packModuleSource(pack, entry)
        const k = choices[i]!.k
        const slotBytes = writer.slotBytes(entry.name)
        const c = await storeModule(
          source,
          k,
          {
            ...moduleOptions,
            sink: {
              async restart() {},
              async write(start, count, bytes) {
                for (let t = 0; t < count; t++) await writer.writeA(entry, source.adapters[start + t]!.slot, bytes.subarray(t * slotBytes, (t + 1) * slotBytes))
              },
            },
          },
          choices[i]!.basis,
        )
        choices[i] = {k}
        await writer.writeSharedB(entry, c.sharedB)
        modules.push(c)
        options.onProgress?.({stage: 'modules', done: entries.length + i + 1, total})
      }
      await writer.commit(errorsOf(modules, pack.slots))
    } catch (error) {
      await writer.abort()
      throw error
    }
    return {
      input: input.label,
      out,
      adapters: pack.adapters.length,
      slots: pack.slots,
      input_dtype: pack.manifest.dtype,
      dtype,
      normalize: Boolean(options.normalize),
      selection: selectionRecord(options.selection),
      modules: modules.map(moduleReport),
      totals: totalsOf(modules, pack),
      seconds: (performance.now() - started) / 1000,
      warnings: [...input.warnings, ...convergenceWarnings(modules), ...growthWarnings(modules)],
    }
  } finally {
    if (!options.engine) await engine.release()
    await input.close()
  }
}

/**
 * The savings/error table over K (powers of two up to where compression stops paying), without writing.
 * @throws InputError as `compressFile`
 */
export async function sweepFile(options: CompressInputOptions & {ranks?: readonly number[]}): Promise<SweepReport> {
  const started = performance.now()
  const input = await openInput(await resolveCompressInput(options), tmpdir(), options.onProgress)
  const engine = options.engine ?? new MatMulEngine()
  try {
    const {pack} = input
    const dtype = outputDType(pack, options.dtype)
    const moduleOptions = moduleOptionsOf(pack, dtype, engine, options)
    const shapes = pack.manifest.modules.map((m) => {
      const source = packModuleSource(pack, m)
      return {name: m.name, in: m.in, out: m.out, R: m.R, rankSum: source.adapters.reduce((s, a) => s + a.r, 0), slots: pack.slots}
    })
    const ranks = options.ranks ? [...options.ranks] : sweepRanks(shapes, DTYPES[pack.manifest.dtype].bytes, DTYPES[dtype].bytes)
    const perK: CompressedModule[][] = ranks.map(() => [])
    let unconverged: string[] = []
    for (const [i, entry] of pack.manifest.modules.entries()) {
      const source = packModuleSource(pack, entry)
      const sweep = await sweepModule(source, ranks, moduleOptions)
      if (!sweep.converged) unconverged.push(entry.name)
      sweep.points.forEach((p, j) => {
        perK[j]!.push({
          name: entry.name,
          kind: entry.kind,
          in: entry.in,
          out: entry.out,
          R: entry.R,
          rankSum: shapes[i]!.rankSum,
          K: p.K,
          adapters: source.adapters,
          sharedB: new Uint8Array(0),
          errors: p.errors,
          bytesBefore: sweep.bytesBefore,
          bytesAfter: bytesAfter(shapes[i]!, p.K, DTYPES[dtype].bytes),
          method: sweep.method,
          converged: sweep.converged,
        })
      })
      options.onProgress?.({stage: 'modules', done: i + 1, total: pack.manifest.modules.length})
    }
    unconverged = [...new Set(unconverged)]
    return {
      input: input.label,
      adapters: pack.adapters.length,
      slots: pack.slots,
      input_dtype: pack.manifest.dtype,
      dtype,
      normalize: Boolean(options.normalize),
      ranks,
      sweep: ranks.map((K, j) => ({K, modules: perK[j]!.map(moduleReport), totals: totalsOf(perK[j]!, pack)})),
      seconds: (performance.now() - started) / 1000,
      warnings: [...input.warnings, ...unconverged.map(unconvergedWarning)],
    }
  } finally {
    if (!options.engine) await engine.release()
    await input.close()
  }
}

function moduleOptionsOf(pack: PackFile, dtype: FloatOutputDType, engine: MatMulEngine, options: CompressInputOptions): ModuleCompressOptions {
  return {
    engine,
    dtype,
    inputBytesPerElement: DTYPES[pack.manifest.dtype].bytes,
    slots: pack.slots,
    normalize: options.normalize,
    method: options.method,
    chunk: options.chunk,
  }
}

function outputDType(pack: PackFile, requested: FloatOutputDType | undefined): FloatOutputDType {
  if (requested) return requested
  const d = pack.manifest.dtype
  return (FLOAT_OUTPUT_DTYPES as readonly string[]).includes(d) ? (d as FloatOutputDType) : 'F32'
}

function selectionRecord(selection: RankSelection): Record<string, number> {
  if ('rank' in selection) return {rank: selection.rank}
  if ('maxError' in selection) return {max_error: selection.maxError}
  return {savings: selection.savings}
}

/** Per module and slot: the measured error, null where the slot has no adapter on the module. */
function errorsOf(modules: readonly CompressedModule[], slots: number): SharedBErrors {
  const out: SharedBErrors = Object.create(null)
  for (const m of modules) {
    const errors = new Array<number | null>(slots).fill(null)
    m.adapters.forEach((a, i) => (errors[a.slot] = m.errors[i]!))
    out[m.name] = {K: m.K, errors}
  }
  return out
}

export function moduleReport(m: CompressedModule): ModuleReport {
  return {
    name: m.name,
    R: m.R,
    K: m.K,
    bytes_before: m.bytesBefore,
    bytes_after: m.bytesAfter,
    savings_pct: savingsPercent(m.bytesBefore, m.bytesAfter),
    error_mean: meanOf(m.errors),
    error_max: maxOf(m.errors),
  }
}

export function totalsOf(modules: readonly CompressedModule[], pack: PackFile): ReportTotals {
  let before = 0
  let after = 0
  let sum = 0
  let count = 0
  let worst: WorstAdapter | null = null
  for (const m of modules) {
    before += m.bytesBefore
    after += m.bytesAfter
    m.adapters.forEach((a, i) => {
      const e = m.errors[i]!
      sum += e
      count++
      if (worst === null || e > worst.error) worst = {name: pack.adapterBySlot(a.slot).name, slot: a.slot, module: m.name, error: e}
    })
  }
  return {bytes_before: before, bytes_after: after, savings_pct: savingsPercent(before, after), error_mean: count > 0 ? sum / count : 0, error_max: worst === null ? 0 : (worst as WorstAdapter).error, worst_adapter: worst}
}

function unconvergedWarning(module: string): string {
  return `module ${module}: the iterative eigensolver stopped at its iteration limit; the errors are exact for the values stored, but the basis may be slightly off the optimum`
}

/** Modules whose shared-B form is larger than their stacks: the K asked for does not save memory there. */
export function growthWarnings(modules: readonly CompressedModule[]): string[] {
  const grown = modules.filter((m) => m.bytesAfter > m.bytesBefore)
  if (grown.length === 0) return []
  const first = grown[0]!
  return [
    `${grown.length} of ${modules.length} modules are larger compressed than packed (e.g. ${first.name}: K = ${first.K} stores ${first.bytesAfter} bytes against ${first.bytesBefore}); shared B saves memory only at smaller K`,
  ]
}

function convergenceWarnings(modules: readonly CompressedModule[]): string[] {
  return modules.filter((m) => !m.converged).map((m) => unconvergedWarning(m.name))
}

/** `K = 4` or `K 2–16 per module`. */
function describeKs(ks: readonly number[]): string {
  const lo = Math.min(...ks)
  const hi = Math.max(...ks)
  return lo === hi ? `K = ${hi}` : `K ${lo}–${hi} per module`
}
