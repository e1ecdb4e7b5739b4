/**
 * Group-wise asymmetric round-to-nearest int4.
 *
 * A 2-D tensor [rows, cols] is split along each row (the input dimension of an
 * `nn.Linear` weight [out, in]) into groups of `groupSize` elements. Per group,
 * with lo = min(min x, 0) and hi = max(max x, 0) (the range always holds 0, as
 * GPTQ's quantizer does): `scale = f16((hi − lo) / 15)`,
 * `zero = clamp(roundHalfEven(−lo / scale), 0, 15)`,
 * `q = clamp(roundHalfEven(x / scale) + zero, 0, 15)`; value `(q − zero) · scale`
 * in float32. An all-zero group has scale 0, zero 0 and q 0.
 *
 * Stored as `qweight` U8 [rows, cols/2] (element 2j in the low nibble, 2j+1 in
 * the high one), `scales` F16 [rows, cols/groupSize], `zeros` U8 [rows, cols/groupSize],
 * for a weight `M.weight` under the module's name: `M.qweight`, `M.scales`,
 * `M.zeros`. The file's `__metadata__` records `lora.quantization = int4`,
 * `lora.group_size` and `lora.dtype` (the float dtype the weights had).
 */
import {InputError} from '../errors.js'
import {DType, bytesOf, f16BitsToNumber, f16ToF32Table, numberToF16Bits, typedView} from '../dtype.js'
import {formatShape} from '../shape.js'
import {sanitizeName} from '../formats/safetensors-header.js'
import type {TensorSource} from '../formats/tensor-source.js'
import {RowCodec, SafetensorsScheme, StoredQuantTensor, notFiniteError, partError, twoDProblem, weightModule} from './quant-scheme.js'

export const INT4_DEFAULT_GROUP_SIZE = 128
/** Largest group range (hi − lo) whose scale fits in f16 (65504 · 15). */
export const INT4_MAX_RANGE = 65504 * 15

/** The precondition of int4 for rows of `rowSize` elements and this group size, or undefined when it holds. */
export function int4RowProblem(rowSize: number, groupSize: number): string | undefined {
  if (!Number.isSafeInteger(groupSize) || groupSize < 2 || groupSize % 2 !== 0) return `group size (${groupSize}) must be an even integer of at least 2`
  if (rowSize % groupSize !== 0) return `row size (${rowSize}) is not a multiple of the int4 group size (${groupSize})`
  return undefined
}

/** Round half to even (as NumPy and torch round). */
export function roundHalfEven(x: number): number {
  const r = Math.round(x)
  return r - x === 0.5 && r % 2 !== 0 ? r - 1 : r
}

export interface Int4Encoded {
  readonly rows: number
  readonly cols: number
  readonly groupSize: number
  /** [rows, cols/2] */
  readonly qweight: Uint8Array
  /** [rows, cols/groupSize] f16 bits */
  readonly scales: Uint16Array
  /** [rows, cols/groupSize] */
  readonly zeros: Uint8Array
}

/** Where int4 codes go: [rows, cols/2] codes, [rows, cols/groupSize] f16 scales and zero points. */
type Int4Storage = Pick<Int4Encoded, 'cols' | 'groupSize' | 'qweight' | 'scales' | 'zeros'>

/**
 * Encode whole rows `[startRow, startRow + values.length / cols)` into `storage`.
 * @throws InputError QUANT_NOT_FINITE for NaN/±Infinity, QUANT_SCALE_OVERFLOW when a group's range exceeds 982560
 */
export function encodeInt4Rows(storage: Int4Storage, startRow: number, values: Float32Array): void {
  const {cols, groupSize, qweight, scales, zeros} = storage
  const first = startRow * cols
  const groups = values.length / groupSize
  const firstGroup = first / groupSize
  for (let g = 0; g < groups; g++) {
    const s = g * groupSize
    let lo = 0
    let hi = 0
    for (let j = s; j < s + groupSize; j++) {
      const x = values[j]!
      if (x < lo) lo = x
      else if (x > hi) hi = x
      else if (x !== x) throw notFinite(first + j, x)
    }
    if (!Number.isFinite(lo) || !Number.isFinite(hi)) throw notFinite(first + s + indexOfNonFinite(values, s, groupSize), lo === -Infinity ? lo : hi)
    if (hi - lo > INT4_MAX_RANGE) {
      throw new InputError('QUANT_SCALE_OVERFLOW', `group at element ${first + s} spans ${hi - lo}, too large for int4's f16 scale (limit ${INT4_MAX_RANGE})`)
    }
    const bits = numberToF16Bits((hi - lo) / 15)
    const scale = f16BitsToNumber(bits)
    const zero = scale === 0 ? 0 : Math.min(15, Math.max(0, roundHalfEven(-lo / scale)))
    scales[firstGroup + g] = bits
    zeros[firstGroup + g] = zero
    const inv = scale === 0 ? 0 : 1 / scale
    for (let j = s; j < s + groupSize; j += 2) {
      const q0 = scale === 0 ? 0 : Math.min(15, Math.max(0, roundHalfEven(values[j]! * inv) + zero))
      const q1 = scale === 0 ? 0 : Math.min(15, Math.max(0, roundHalfEven(values[j + 1]! * inv) + zero))
      qweight[(first + j) >> 1] = q0 | (q1 << 4)
    }
  }
}

function int4Layout([rows, cols]: readonly [number, number], groupSize: number): {qBytes: number; scalesAt: number; groups: number} {
  const qBytes = (rows * cols) / 2
  return {qBytes, scalesAt: Math.ceil(qBytes / 2) * 2, groups: (rows * cols) / groupSize}
}

/** int4 by row ranges: codes, then (2-byte aligned) scales, then zero points. */
const INT4_CODEC: RowCodec<Int4Storage, Int4Encoded> = Object.freeze<RowCodec<Int4Storage, Int4Encoded>>({
  storageBytes(shape, options) {
    const {scalesAt, groups} = int4Layout(shape, options.blockSize)
    return scalesAt + groups * 3
  },
  storage(memory, shape, options) {
    const {qBytes, scalesAt, groups} = int4Layout(shape, options.blockSize)
    return {
      cols: shape[1],
      groupSize: options.blockSize,
      qweight: new Uint8Array(memory, 0, qBytes),
      scales: new Uint16Array(memory, scalesAt, groups),
      zeros: new Uint8Array(memory, scalesAt + groups * 2, groups),
    }
  },
  encodeRows: (storage, _shape, _options, startRow, values) => encodeInt4Rows(storage, startRow, values),
  complete: (storage, [rows]) => ({rows, ...storage}),
})

/** Streaming int4 encoder: push whole rows, then `finish()`. */
export class Int4Encoder {
  readonly qweight: Uint8Array
  readonly scales: Uint16Array
  readonly zeros: Uint8Array
  private row = 0

  constructor(
    readonly rows: number,
    readonly cols: number,
    readonly groupSize: number,
  ) {
    const problem = int4RowProblem(cols, groupSize)
    if (problem) throw new InputError('QUANT_PRECONDITION', `int4: ${problem}`)
    this.qweight = new Uint8Array((rows * cols) / 2)
    this.scales = new Uint16Array((rows * cols) / groupSize)
    this.zeros = new Uint8Array((rows * cols) / groupSize)
  }

  /**
   * Encode the next whole rows.
   * @throws InputError QUANT_NOT_FINITE for NaN/±Infinity, QUANT_SCALE_OVERFLOW when a group's range exceeds 982560
   */
  push(values: Float32Array): void {
    const {cols} = this
    if (values.length % cols !== 0) throw new RangeError(`int4: ${values.length} values is not a whole number of ${cols}-element rows`)
    if ((this.row * cols) + values.length > this.rows * cols) throw new RangeError(`int4: more rows pushed than the tensor has (${this.rows})`)
    encodeInt4Rows(this, this.row, values)
    this.row += values.length / cols
  }

  finish(): Int4Encoded {
    if (this.row !== this.rows) throw new RangeError(`int4: ${this.row} of ${this.rows} rows pushed`)
    return {rows: this.rows, cols: this.cols, groupSize: this.groupSize, qweight: this.qweight, scales: this.scales, zeros: this.zeros}
  }
}

function indexOfNonFinite(values: Float32Array, start: number, length: number): number {
  for (let j = 0; j < length; j++) if (!Number.isFinite(values[start + j]!)) return j
  return 0
}

const notFinite = (index: number, value: number) => notFiniteError(index, value)

/** Quantize a whole [rows, cols] tensor. */
export function quantizeInt4(values: Float32Array, rows: number, cols: number, groupSize = INT4_DEFAULT_GROUP_SIZE): Int4Encoded {
  const encoder = new Int4Encoder(rows, cols, groupSize)
  encoder.push(values)
  return encoder.finish()
}

/** Decode rows `[startRow, startRow + rowCount)`: `(q − zero) · scale` in float32. */
export function dequantizeInt4(encoded: Int4Encoded, startRow = 0, rowCount = encoded.rows, out: Float32Array = new Float32Array(rowCount * encoded.cols)): Float32Array {
  const {cols, groupSize, qweight, scales, zeros} = encoded
  const table = f16ToF32Table()
  const first = startRow * cols
  const groups = (rowCount * cols) / groupSize
  const firstGroup = first / groupSize
  for (let g = 0; g < groups; g++) {
    const scale = table[scales[firstGroup + g]!]!
    const zero = zeros[firstGroup + g]!
    const s = g * groupSize
    for (let j = s; j < s + groupSize; j += 2) {
      const byte = qweight[(first + j) >> 1]!
      out[j] = Math.fround(((byte & 0x0f) - zero) * scale)
      out[j + 1] = Math.fround(((byte >> 4) - zero) * scale)
    }
  }
  return out
}

/** int4 keeps the module name: `x.q_proj.weight` → `x.q_proj`. */
export const int4Module = weightModule

/** The qweight/scales/zeros of module `m`, checked against each other (headers only). */
function int4Weight(source: TensorSource, m: string, metadata: ReadonlyMap<string, string>): StoredQuantTensor {
  const q = source.tensors.get(`${m}.qweight`)!
  const s = source.tensors.get(`${m}.scales`)
  const z = source.tensors.get(`${m}.zeros`)
  const where = `int4 weight "${sanitizeName(m)}"`
  if (!s || !z) throw partError(source, 'QUANT_MISSING_PART', `${where}: ${m}.qweight needs ${m}.scales and ${m}.zeros (GPTQ/AWQ checkpoints with qzeros are not read)`)
  if (q.dtype !== 'U8' || s.dtype !== 'F16' || z.dtype !== 'U8' || q.shape.length !== 2 || s.shape.length !== 2 || z.shape.length !== 2) {
    throw partError(source, 'QUANT_BAD_PART', `${where}: expected qweight U8, scales F16, zeros U8, all 2-D (got ${q.dtype} ${formatShape(q.shape)}, ${s.dtype} ${formatShape(s.shape)}, ${z.dtype} ${formatShape(z.shape)})`)
  }
  const [rows, half] = q.shape as [number, number]
  const groups = s.shape[1]!
  const cols = half * 2
  if (s.shape[0] !== rows || z.shape[0] !== rows || z.shape[1] !== groups || groups === 0 || cols % groups !== 0 || (cols / groups) % 2 !== 0) {
    throw partError(source, 'QUANT_BAD_PART', `${where}: qweight ${formatShape(q.shape)}, scales ${formatShape(s.shape)} and zeros ${formatShape(z.shape)} do not describe one [rows, cols] weight in groups`)
  }
  const dtype = (metadata.get('lora.dtype') as DType | undefined) ?? 'F16'
  return {name: `${m}.weight`, scheme: 'int4', shape: [rows, cols], dtype: ['F16', 'BF16', 'F32'].includes(dtype) ? dtype : 'F16', blockSize: cols / groups, doubleQuant: false, parts: [`${m}.qweight`, `${m}.scales`, `${m}.zeros`]}
}

/** int4 as a scheme: groups along each row, stored as qweight/scales/zeros in safetensors. */
export const INT4_SCHEME: SafetensorsScheme<Int4Encoded> = Object.freeze<SafetensorsScheme<Int4Encoded>>({
  name: 'int4',
  description: "group-wise asymmetric int4, as qweight/scales/zeros",
  format: 'safetensors',
  defaultBlockSize: INT4_DEFAULT_GROUP_SIZE,
  blockSizeFlag: '--group-size',
  blockSizeHelp: `even, default ${INT4_DEFAULT_GROUP_SIZE}`,
  blocksAlong: 'rows',
  doubleQuant: false,
  bits: 4,
  bytesPerBlock: (groupSize: number) => groupSize / 2 + 3,
  blockSizeProblem: (groupSize: number) => int4RowProblem(groupSize, groupSize),
  shapeProblem: (shape: readonly number[], groupSize: number) => twoDProblem(shape) ?? int4RowProblem(shape[1]!, groupSize),
  rowAlignment: () => 1,
  codec: INT4_CODEC,
  decoder: (encoded) => (start, count, out) => dequantizeInt4(encoded.data, start, count, out),
  plannedParts(name, [rows, cols], options) {
    const m = int4Module(name)
    return [
      {name: `${m}.qweight`, dtype: 'U8', shape: [rows, cols / 2]},
      {name: `${m}.scales`, dtype: 'F16', shape: [rows, cols / options.blockSize]},
      {name: `${m}.zeros`, dtype: 'U8', shape: [rows, cols / options.blockSize]},
    ]
  },
  storedParts(name, encoded) {
    const m = int4Module(name)
    return [
      {name: `${m}.qweight`, data: encoded.data.qweight},
      {name: `${m}.scales`, data: bytesOf(encoded.data.scales)},
      {name: `${m}.zeros`, data: encoded.data.zeros},
    ]
  },
  findWeight: async (source, stored, metadata) => (stored.endsWith('.qweight') ? int4Weight(source, stored.slice(0, -'.qweight'.length), metadata) : undefined),
  async readWeight(source, t) {
    const [rows, cols] = t.shape
    const m = int4Module(t.name)
    return {
      scheme: 'int4',
      shape: t.shape,
      data: {
        rows,
        cols,
        groupSize: t.blockSize,
        qweight: await source.readBytes(`${m}.qweight`),
        scales: typedView('F16', await source.readBytes(`${m}.scales`)) as Uint16Array,
        zeros: await source.readBytes(`${m}.zeros`),
      },
    }
  },
  metadata: ({options, mainDtype}) => ({'lora.quantization': 'int4', 'lora.group_size': String(options.blockSize), 'lora.dtype': mainDtype}),
})
