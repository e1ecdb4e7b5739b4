/**
 * Deterministic synthetic PEFT LoRA adapters for a Llama-style base.
 *
 * For module P of adapter i (rank r, scaling s = alpha / r):
 *   A_i ~ N(0, 1/in)                                  [r, in]
 *   B_i = sqrt(F)·U_P·G_i + sqrt(1−F)·N_i             [out, r]
 * with U_P an orthonormal [out, R_max] basis shared by every adapter (drawn
 * from the seed and the module name only), G_i and N_i per adapter, and both
 * terms of equal element variance σ². σ is chosen so that ‖s·B·A‖_F is about
 * `DELTA_TO_WEIGHT_RATIO` of ‖W‖_F for a base weight with N(0, 1/in) entries,
 * the magnitude of real fine-tuning deltas. F = 0 gives independent adapters,
 * F = 1 adapters whose B share one column space. B is never all zero.
 *
 * Every (seed, adapter, module) has its own random stream: the same seed
 * gives byte-identical files.
 */
import {mkdir} from 'node:fs/promises'
import {join} from 'node:path'
import {AtomicDirectory, withAtomic} from '../io/atomic-output.js'
import {SYNTH_ADAPTERS_OUTPUT_KIND, checkOutputs} from '../io/output-target.js'
import {assertDiskFits, assertMemoryFits} from '../io/resources.js'
import {DTYPES, FloatOutputDType, fromFloat} from '../dtype.js'
import {UsageError} from '../errors.js'
import {AdapterTensor, loraKeys, peftLoraConfig, writeAdapterFiles} from '../formats/peft-adapter-writer.js'
import {orthonormalizeColumns} from '../linalg/orthonormalize.js'
import {LlamaDims, Projection, projectionPath, projectionShape} from '../models/llama.js'
import type {ProgressCallback} from '../progress.js'
import {Rng} from '../random.js'

/** Target size of an adapter's delta relative to the base weight it adapts (Frobenius norms). */
export const DELTA_TO_WEIGHT_RATIO = 0.05

/** Bytes of an adapter folder beside its tensor data (a folder and two files of at least one 4 KiB block each): an estimate for the disk check. */
const SYNTH_ADAPTER_FILE_OVERHEAD = 12 * 1024

export interface SynthAdaptersOptions extends LlamaDims {
  /** Output folder; adapters go to `<out>/adapter-0000`, … */
  out: string
  count: number
  /** Ranks, assigned to adapters in turn (adapter i gets ranks[i % ranks.length]). */
  ranks: readonly number[]
  /** lora_alpha for every adapter; default 2·r. */
  alpha?: number
  targets: readonly Projection[]
  dtype: FloatOutputDType
  seed: number
  /** F in [0, 1]: the share of B drawn from the module's shared basis. */
  sharedSubspace: number
  force?: boolean
  onProgress?: ProgressCallback
}

export interface SynthAdapterSummary {
  name: string
  path: string
  r: number
  lora_alpha: number
  bytes: number
}

export interface SynthAdaptersResult {
  out: string
  count: number
  base_model: string
  modules_per_adapter: number
  dtype: FloatOutputDType
  bytes: number
  adapters: SynthAdapterSummary[]
}

/** The `base_model_name_or_path` synthetic adapters and bases of these dims share. */
export function syntheticBaseName(dims: LlamaDims): string {
  return `synthetic/llama-h${dims.hidden}-i${dims.intermediate}-l${dims.layers}`
}

/** Folder name of adapter `index` among `count`. */
export function adapterFolderName(index: number, count: number): string {
  return `adapter-${String(index).padStart(Math.max(4, String(count - 1).length), '0')}`
}

/** Check options; throws UsageError naming the flag. */
function validate(o: SynthAdaptersOptions): void {
  const positive = (value: number, flag: string) => {
    if (!Number.isSafeInteger(value) || value <= 0) throw new UsageError('BAD_FLAG', `${flag} must be a positive integer (got ${value})`)
  }
  positive(o.count, '--count')
  positive(o.hidden, '--hidden')
  positive(o.intermediate, '--intermediate')
  positive(o.layers, '--layers')
  if (o.ranks.length === 0) throw new UsageError('BAD_FLAG', '--ranks needs at least one rank')
  for (const r of o.ranks) positive(r, '--rank')
  if (!(o.sharedSubspace >= 0 && o.sharedSubspace <= 1)) {
    throw new UsageError('BAD_FLAG', `--shared-subspace must be between 0 and 1 (got ${o.sharedSubspace})`)
  }
  if (o.targets.length === 0) throw new UsageError('BAD_FLAG', '--targets needs at least one projection')
  const maxRank = Math.max(...o.ranks)
  for (const t of o.targets) {
    const [out, inp] = projectionShape(o, t)
    if (maxRank > Math.min(out, inp)) throw new UsageError('BAD_FLAG', `rank ${maxRank} is larger than ${t}'s smaller dimension (${Math.min(out, inp)})`)
  }
  if (o.alpha !== undefined && !(Number.isFinite(o.alpha) && o.alpha > 0)) throw new UsageError('BAD_FLAG', `--alpha must be a positive number (got ${o.alpha})`)
}

/** The shared basis U_P of a module: [out, k] orthonormal columns, row-major float64. */
function sharedBasis(seed: number, module: string, out: number, k: number): Float64Array {
  const rng = new Rng(seed, 'shared-basis', module)
  const m = new Float64Array(out * k)
  rng.fillNormal(m)
  return orthonormalizeColumns(m, out, k)
}

/** A and B (float32, row-major) of one synthetic module. */
export function synthesizeModule(options: {
  seed: number
  adapter: number
  module: string
  in: number
  out: number
  r: number
  alpha: number
  sharedSubspace: number
  basis?: Float64Array
  basisRank?: number
}): {a: Float32Array; b: Float32Array} {
  const {r, out} = options
  const rng = new Rng(options.seed, 'adapter', options.adapter, options.module)
  const a = rng.fillNormal(new Float32Array(r * options.in), 1 / Math.sqrt(options.in))
  const scaling = options.alpha / r
  const sigma = DELTA_TO_WEIGHT_RATIO / (scaling * Math.sqrt(r))
  const f = options.sharedSubspace
  const b = new Float32Array(out * r)
  const noise = Math.sqrt(1 - f) * sigma
  for (let i = 0; i < b.length; i++) b[i] = noise * rng.normal()
  if (f > 0) {
    const k = options.basisRank!
    const basis = options.basis!
    const g = rng.fillNormal(new Float64Array(k * r), sigma * Math.sqrt(out / k))
    const w = Math.sqrt(f)
    for (let row = 0; row < out; row++) {
      for (let col = 0; col < r; col++) {
        let sum = 0
        for (let l = 0; l < k; l++) sum += basis[row * k + l]! * g[l * r + col]!
        b[row * r + col]! += w * sum
      }
    }
  }
  return {a, b}
}

/**
 * Write `count` synthetic adapter folders into `out` (atomically: all or nothing).
 * @throws UsageError for out-of-range options or an existing `out` without `force`
 */
export async function synthesizeAdapters(options: SynthAdaptersOptions): Promise<SynthAdaptersResult> {
  validate(options)
  await checkOutputs([{path: options.out, kind: 'folder', folderKind: SYNTH_ADAPTERS_OUTPUT_KIND, flag: '--out'}], {force: options.force})
  const maxRank = Math.max(...options.ranks)
  const modules: Array<{path: string; in: number; out: number; projection: Projection}> = []
  for (let layer = 0; layer < options.layers; layer++) {
    for (const projection of options.targets) {
      const [out, inp] = projectionShape(options, projection)
      modules.push({path: projectionPath(layer, projection), in: inp, out, projection})
    }
  }
  // every adapter's A and B in its dtype, and its summary in the result (a few hundred bytes of heap)
  let diskBytes = 0
  for (const [k, r] of options.ranks.entries()) {
    const adapters = Math.ceil((options.count - k) / options.ranks.length) // ranks are assigned in turn
    diskBytes += adapters * (modules.reduce((s, m) => s + r * (m.in + m.out), 0) * DTYPES[options.dtype].bytes + SYNTH_ADAPTER_FILE_OVERHEAD)
  }
  assertDiskFits([{path: options.out, bytes: diskBytes, what: `${options.count} adapters`}], `synth adapters ${options.out}`)
  assertMemoryFits([{bytes: 0, heap: options.count * 512, largestArray: Math.max(...modules.map((m) => m.out * maxRank * 8)), what: `${options.count} adapters`}], `synth adapters ${options.out}`)
  const bases = new Map<string, Float64Array>()
  if (options.sharedSubspace > 0) {
    for (const m of modules) bases.set(m.path, sharedBasis(options.seed, m.path, m.out, maxRank))
  }
  const baseModel = syntheticBaseName(options)
  const adapters: SynthAdapterSummary[] = []
  const dir = await AtomicDirectory.create(options.out, {force: options.force, kind: SYNTH_ADAPTERS_OUTPUT_KIND})
  await withAtomic(dir, async () => {
    for (let i = 0; i < options.count; i++) {
      const r = options.ranks[i % options.ranks.length]!
      const alpha = options.alpha ?? 2 * r
      const tensors: AdapterTensor[] = []
      for (const m of modules) {
        const {a, b} = synthesizeModule({
          seed: options.seed,
          adapter: i,
          module: m.path,
          in: m.in,
          out: m.out,
          r,
          alpha,
          sharedSubspace: options.sharedSubspace,
          basis: bases.get(m.path),
          basisRank: maxRank,
        })
        const [aKey, bKey] = loraKeys(m.path)
        tensors.push({name: aKey, dtype: options.dtype, shape: [r, m.in], data: fromFloat(options.dtype, a)})
        tensors.push({name: bKey, dtype: options.dtype, shape: [m.out, r], data: fromFloat(options.dtype, b)})
      }
      const name = adapterFolderName(i, options.count)
      const config = peftLoraConfig({
        base_model_name_or_path: baseModel,
        r,
        lora_alpha: alpha,
        target_modules: [...options.targets],
      })
      const folder = join(dir.path, name)
      await mkdir(folder)
      await writeAdapterFiles(folder, config, tensors)
      const bytes = tensors.reduce((sum, t) => sum + t.data.byteLength, 0)
      adapters.push({name, path: join(dir.finalPath, name), r, lora_alpha: alpha, bytes})
      options.onProgress?.({stage: 'adapters', done: i + 1, total: options.count})
    }
  })
  return {
    out: dir.finalPath,
    count: options.count,
    base_model: baseModel,
    modules_per_adapter: modules.length,
    dtype: options.dtype,
    bytes: adapters.reduce((s, a) => s + a.bytes, 0),
    adapters,
  }
}
