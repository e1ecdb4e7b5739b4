/**
 * How much of an adapter survives a merge, per merged tensor and in total.
 *
 * With W* the exact float64 merge of the original base and ΔW the exact
 * float64 delta, for a stored result Ŵ:
 *   weight_rel_error = ‖Ŵ − W*‖_F / ‖W*‖_F
 *   delta_snr        = ‖ΔW‖_F / ‖Ŵ − W*‖_F                       (null when Ŵ = W* exactly)
 *   adapter_retained = 1 − ‖X Ŵᵀ − X W*ᵀ‖_F / ‖X ΔWᵀ‖_F           (null when X ΔWᵀ = 0)
 * X holds probe inputs [N, in]: N(0, 1) rows from a seeded stream, or real
 * activations from a file. Totals use the same formulas over all merged
 * tensors at once (sums of squares).
 *
 * Scenarios, for a scheme S with encode Q and decode D:
 *   merge_then_quantize      the output tensor as written, read back from disk: D(Q(W + ΔW))
 *   quantized_base_unmerged  D(Q(W)) + ΔW: a 4-bit base serving the adapter unmerged in 16 bit
 *   requantize               D(Q(D(Q(W)) + ΔW)): merging into an already-quantized base
 * (b) and (c) are encoded and decoded with the same code that writes and reads
 * the files. W*, ΔW, the errors and all sums of squares are float64; the
 * probe projections X·Eᵀ multiply float32 copies of X and E (onnxruntime's
 * MLAS), whose relative error (about 1e-6) is far below the digits reported.
 * With `--from-quantized` the original base is unknown: W is the
 * dequantized base, so (b) is exact and (a) is (c). Without a scheme, only
 * `merged` (the written float tensor) is measured.
 */
import {UsageError} from '../errors.js'
import {SafetensorsFile} from '../formats/safetensors-file.js'
import {sanitizeName} from '../formats/safetensors-header.js'
import {gemm} from '../linalg/matmul-engine.js'
import type {ModelReader} from '../model-io/model-reader.js'
import {QUANT_SCHEMES, QuantOptions, TensorDecoder, createDecoder, createEncoder} from '../quant/schemes.js'
import {Rng} from '../random.js'
import type {ProgressCallback} from '../progress.js'
import {DeltaFactors, deltaRows, toFloat32Factors} from './delta.js'
import type {MergeTarget} from './plan.js'

/** Rows of a tensor processed at once while measuring (float64 work arrays of about this many elements). */
export const QUALITY_CHUNK_ELEMENTS = 1 << 21

export interface Figures {
  weight_rel_error: number | null
  delta_snr: number | null
  adapter_retained: number | null
}

export const SCENARIOS = ['merge_then_quantize', 'quantized_base_unmerged', 'requantize'] as const
export type Scenario = (typeof SCENARIOS)[number] | 'merged'

/** Each scenario in words, with its letter. */
export const SCENARIO_LABELS: Readonly<Record<(typeof SCENARIOS)[number], string>> = {
  merge_then_quantize: '(a) merge, then quantize',
  quantized_base_unmerged: '(b) quantized base + unmerged 16-bit adapter',
  requantize: '(c) merge into a quantized base, re-quantize',
}

export interface TensorQuality {
  name: string
  /** Whether the written tensor is 4-bit (false: kept in float because the scheme cannot hold it). */
  quantized: boolean
  merged?: Figures
  merge_then_quantize?: Figures
  quantized_base_unmerged?: Figures
  requantize?: Figures
}

export interface QualityReport {
  scheme: string | null
  /** The scenario that was written to disk (the one `--max-loss` gates). */
  written: Scenario
  probes: {rows: number; source: string}
  tensors: TensorQuality[]
  totals: Partial<Record<Scenario, Figures>>
}

export interface ProbeOptions {
  /** Rows of X (default 256). */
  readonly rows: number
  readonly seed: number
  /** safetensors file with [N, in] activations named by module (`….q_proj`) or weight name. */
  readonly file?: string
}

export interface MeasureOptions {
  readonly base: ModelReader
  /** The written output, re-opened (read under the base's tensor names and layout). */
  readonly output: Pick<ModelReader, 'readRows'>
  readonly targets: readonly MergeTarget[]
  /** float64 factors per target name. */
  readonly deltas: (target: MergeTarget) => Promise<DeltaFactors>
  /** Scheme per target name (undefined: written in float). */
  readonly quantOf: (name: string) => QuantOptions | undefined
  readonly scheme: QuantOptions | undefined
  readonly fromQuantized: boolean
  readonly probes: ProbeOptions
  readonly onProgress?: ProgressCallback
}

class Sums {
  err2 = 0
  probe2 = 0
  /** Accumulated X·E for transposed layers [N, cols]. */
  acc: Float64Array | undefined
}

/** Probe rows per input width, drawn once. */
class Probes {
  private readonly drawn = new Map<number, Float64Array>()
  private file: SafetensorsFile | undefined

  constructor(private readonly options: ProbeOptions) {}

  async get(target: MergeTarget, width: number): Promise<{x: Float64Array; rows: number}> {
    if (this.options.file) {
      this.file ??= await SafetensorsFile.open(this.options.file)
      const module = target.name.endsWith('.weight') ? target.name.slice(0, -'.weight'.length) : target.name
      const key = [module, target.name].find((k) => this.file!.tensors.has(k))
      if (!key) throw new UsageError('PROBE_MISSING', `read ${this.options.file}: no probe tensor named "${sanitizeName(module)}" or "${sanitizeName(target.name)}"`)
      const info = this.file.tensors.get(key)!
      if (info.shape.length !== 2 || info.shape[1] !== width) {
        throw new UsageError('PROBE_SHAPE', `read ${this.options.file}: probe "${sanitizeName(key)}" is [${info.shape.join(', ')}], expected [N, ${width}] for the input of ${sanitizeName(target.name)}`)
      }
      return {x: (await this.file.readTensor(key)).toFloat64(), rows: info.shape[0]!}
    }
    let x = this.drawn.get(width)
    if (!x) {
      x = new Rng(this.options.seed, 'probe', width).fillNormal(new Float64Array(this.options.rows * width))
      this.drawn.set(width, x)
    }
    return {x, rows: this.options.rows}
  }

  async close(): Promise<void> {
    await this.file?.close()
  }
}

function figures(w2: number, d2: number, e2: number, xd2: number, xe2: number): Figures {
  return {
    weight_rel_error: w2 === 0 ? null : Math.sqrt(e2 / w2),
    delta_snr: e2 === 0 ? null : Math.sqrt(d2 / e2),
    adapter_retained: xd2 === 0 ? null : 1 - Math.sqrt(xe2 / xd2),
  }
}

function sumSquares(a: ArrayLike<number>): number {
  let s = 0
  for (let i = 0; i < a.length; i++) s += a[i]! * a[i]!
  return s
}

/** Columns [c0, c0 + n) of a row-major [rows, width] matrix. */
function columns(x: Float32Array, rows: number, width: number, c0: number, n: number): Float32Array {
  const out = new Float32Array(rows * n)
  for (let r = 0; r < rows; r++) out.set(x.subarray(r * width + c0, r * width + c0 + n), r * n)
  return out
}

/** Encode a whole tensor from row chunks and return its decoder. */
async function encodeTensor(quant: QuantOptions, shape: readonly [number, number], rowsOf: (start: number, count: number) => Promise<Float32Array>): Promise<TensorDecoder> {
  const [rows, cols] = shape
  const encoder = createEncoder(quant, shape)
  const step = chunkRows(rows, cols, QUANT_SCHEMES[quant.scheme].rowAlignment(cols, quant.blockSize))
  for (let r0 = 0; r0 < rows; r0 += step) encoder.push(await rowsOf(r0, Math.min(step, rows - r0)))
  return createDecoder(encoder.finish())
}

function chunkRows(rows: number, cols: number, align: number): number {
  const target = Math.max(1, Math.floor(QUALITY_CHUNK_ELEMENTS / Math.max(1, cols)))
  return Math.min(rows, Math.max(align, target - (target % align)))
}

/**
 * The memory the report holds for `rows` drawn probe rows over `targets`: the
 * probes of every input width (float64, kept), a float32 copy, and the
 * projections and accumulators of one tensor.
 */
export function probeMemory(targets: readonly MergeTarget[], rows: number): {bytes: number; largestArray: number} {
  const widths = new Set(targets.map((t) => (t.transposed ? t.shape[0] : t.shape[1])))
  const maxWidth = Math.max(0, ...widths)
  const maxCols = Math.max(0, ...targets.map((t) => t.shape[1]))
  const perRow = [...widths].reduce((s, w) => s + 8 * w, 0) + 4 * maxWidth + 8 * maxCols * (SCENARIOS.length + 2)
  return {bytes: rows * perRow, largestArray: rows * 8 * Math.max(maxWidth, maxCols)}
}

/**
 * Measure every merged tensor.
 * @throws UsageError for a probe file without a matching [N, in] tensor
 */
export async function measureQuality(options: MeasureOptions): Promise<QualityReport> {
  const probes = new Probes(options.probes)
  const scheme = options.scheme
  const scenarios: Scenario[] = scheme ? [...SCENARIOS] : ['merged']
  const totals = new Map<Scenario, {e2: number; xe2: number}>(scenarios.map((s) => [s, {e2: 0, xe2: 0}]))
  let totalW2 = 0
  let totalD2 = 0
  let totalXD2 = 0
  const tensors: TensorQuality[] = []
  try {
    for (const [index, target] of options.targets.entries()) {
      const [rows, cols] = target.shape
      const width = target.transposed ? rows : cols
      const {x, rows: n} = await probes.get(target, width)
      const f64 = await options.deltas(target)
      const quant = options.quantOf(target.name)
      const baseRows = async (start: number, count: number) => options.base.readRows(target.name, start, count)
      // alternatives (b) and (c), encoded in memory with the written tensor's scheme
      let decB: TensorDecoder | undefined
      let decC: TensorDecoder | undefined
      if (quant && !options.fromQuantized) {
        decB = await encodeTensor(quant, target.shape, baseRows)
        const f32 = toFloat32Factors(f64)
        decC = await encodeTensor(quant, target.shape, async (s, c) => deltaRows(f32, s, c, decB!.decodeRows(s, c)))
      }
      const keys: Array<Scenario | 'delta'> = ['delta', ...scenarios]
      const sums = new Map<Scenario | 'delta', Sums>(keys.map((k) => [k, new Sums()]))
      let w2 = 0
      const step = chunkRows(rows, cols, 1)
      // work buffers reused across chunks: the exact merge (f64) and each error rounded to f32 for the projection
      const exact = new Float64Array(step * cols)
      const errors = new Map<Scenario | 'delta', Float32Array>(keys.map((k) => [k, new Float32Array(step * cols)]))
      const x32 = Float32Array.from(x)
      for (let r0 = 0; r0 < rows; r0 += step) {
        const count = Math.min(step, rows - r0)
        const len = count * cols
        const w0 = await baseRows(r0, count)
        const delta = await deltaRows(f64, r0, count)
        const dSums = sums.get('delta')!
        const dBuf = errors.get('delta')!
        for (let i = 0; i < len; i++) {
          const d = delta[i]!
          const e = w0[i]! + d
          exact[i] = e
          w2 += e * e
          dSums.err2 += d * d
          dBuf[i] = d
        }
        const written = await options.output.readRows(target.name, r0, count)
        /** error = values (+ add) − exact: squared sum in f64, rounded to f32 for the projection */
        const measure = (key: Scenario, values: ArrayLike<number>, add?: Float64Array) => {
          const buf = errors.get(key)!
          let e2 = 0
          for (let i = 0; i < len; i++) {
            const e = values[i]! + (add ? add[i]! : 0) - exact[i]!
            e2 += e * e
            buf[i] = e
          }
          sums.get(key)!.err2 += e2
        }
        if (!scheme) measure('merged', written)
        else {
          measure('merge_then_quantize', written)
          // unmerged adapter on the base as it would be stored: exact when the base is already 4-bit or kept in float
          measure('quantized_base_unmerged', decB ? decB.decodeRows(r0, count) : w0, delta)
          measure('requantize', decC ? decC.decodeRows(r0, count) : written)
        }
        // X [n, rows] · E [rows, cols] accumulates over row chunks (layers stored [in, out]);
        // X [n, cols] · E_chunkᵀ gives whole columns of X·Eᵀ, summed as squares ([out, in])
        const xs = target.transposed ? columns(x32, n, width, r0, count) : undefined
        for (const key of keys) {
          const s = sums.get(key)!
          const e = errors.get(key)!.subarray(0, len)
          if (xs) {
            const y = await gemm(xs, [n, count], e, [count, cols])
            s.acc ??= new Float64Array(n * cols)
            for (let i = 0; i < y.length; i++) s.acc[i]! += y[i]!
          } else {
            s.probe2 += sumSquares(await gemm(x32, [n, cols], e, [count, cols], undefined, {transB: true}))
          }
        }
      }
      for (const s of sums.values()) if (s.acc) s.probe2 = sumSquares(s.acc)
      const d2 = sums.get('delta')!.err2
      const xd2 = sums.get('delta')!.probe2
      totalW2 += w2
      totalD2 += d2
      totalXD2 += xd2
      const entry: TensorQuality = {name: target.name, quantized: quant !== undefined}
      for (const s of scenarios) {
        const {err2, probe2} = sums.get(s)!
        entry[s] = figures(w2, d2, err2, xd2, probe2)
        const t = totals.get(s)!
        t.e2 += err2
        t.xe2 += probe2
      }
      tensors.push(entry)
      options.onProgress?.({stage: 'quality', done: index + 1, total: options.targets.length})
    }
  } finally {
    await probes.close()
  }
  const totalFigures: Partial<Record<Scenario, Figures>> = {}
  for (const [s, t] of totals) totalFigures[s] = figures(totalW2, totalD2, t.e2, totalXD2, t.xe2)
  return {
    scheme: scheme?.scheme ?? null,
    written: scheme ? (options.fromQuantized ? 'requantize' : 'merge_then_quantize') : 'merged',
    probes: {rows: options.probes.file ? -1 : options.probes.rows, source: options.probes.file ?? `N(0, 1), seed ${options.probes.seed}`},
    tensors,
    totals: totalFigures,
  }
}
