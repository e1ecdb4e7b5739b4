/**
 * NF4 (4-bit NormalFloat, QLoRA paper / bitsandbytes `quantize_4bit(…,
 * quant_type="nf4")`).
 *
 * The tensor is flattened; every block of `blockSize` consecutive elements
 * (64 by default; the last block may be shorter) stores its absmax as float32
 * and, per element, the index of the nearest of the 16 code values after
 * dividing by the absmax (multiplying by float32 `1/absmax`, as the
 * bitsandbytes kernel does; a value exactly halfway between two codes takes
 * the lower one, as the kernel's `x > threshold` tests do). Two codes per
 * byte, the first element in the high nibble. An all-zero block has absmax 0
 * and code 7 (the exact 0). Value = `code[q] · absmax` in float32.
 *
 * Double quantization (`bnb_4bit_use_double_quant`): the absmax values, minus
 * their mean, are themselves quantized to 8 bits with the dynamic map in
 * blocks of 256 (`nestAbsmax`, `storedAbsmax` in `dynamic-map.ts`).
 *
 * Stored as transformers + bitsandbytes serialize a `Linear4bit` (for a weight named `W`):
 *   W                                   U8  [ceil(n/2), 1]   packed codes, first element in the high nibble
 *   W.absmax                            F32 [blocks]          (U8 [blocks] with double quantization)
 *   W.quant_map                         F32 [16]              the NF4 code book
 *   W.nested_absmax                     F32 [ceil(blocks/256)] double quantization only
 *   W.nested_quant_map                  F32 [256]             double quantization only
 *   W.quant_state.bitsandbytes__nf4     U8  [len]             JSON: quant_type, blocksize, dtype, shape
 *                                                             (+ nested_blocksize, nested_dtype, nested_offset)
 * and `config.json` gets transformers' `quantization_config` for bitsandbytes.
 */
import {JsonFloat} from '../formats/json-floats.js'
import {DTYPES, DType, bytesOf, dtypeFromTorch, toFloat32} from '../dtype.js'
import {InputError} from '../errors.js'
import {sanitizeName} from '../formats/safetensors-header.js'
import type {TensorSpec} from '../formats/safetensors-header.js'
import type {TensorSource} from '../formats/tensor-source.js'
import {formatShape} from '../shape.js'
import {NESTED_BLOCK_SIZE, Nf4Nested, nestAbsmax, storedAbsmax} from './dynamic-map.js'
import {BlockOptions, EncodedTensor, QuantizedModel, RowCodec, SafetensorsScheme, StoredPart, StoredQuantTensor, notFiniteError, partError, twoDProblem, weightModule} from './quant-scheme.js'

export {nestAbsmax, storedAbsmax}
export type {Nf4Nested}

/** The NF4 code book exactly as bitsandbytes publishes it (`get_4bit_type("nf4")`). */
export const NF4_CODE: readonly number[] = Object.freeze([
  -1.0, -0.6961928009986877, -0.5250730514526367, -0.39491748809814453, -0.28444138169288635, -0.18477343022823334,
  -0.09105003625154495, 0.0, 0.07958029955625534, 0.16093020141124725, 0.24611230194568634, 0.33791524171829224,
  0.44070982933044434, 0.5626170039176941, 0.7229568362236023, 1.0,
])

/** Block sizes bitsandbytes accepts for 4-bit quantization. */
export const NF4_BLOCK_SIZES: readonly number[] = Object.freeze([64, 128, 256, 512, 1024, 2048, 4096])
export const NF4_DEFAULT_BLOCK_SIZE = 64
/** Block size of the second-level (absmax) quantization, as bitsandbytes uses. */
export const NF4_NESTED_BLOCK_SIZE = NESTED_BLOCK_SIZE
/** The code of the exact zero. */
export const NF4_ZERO_CODE = 7

const CODE = Float32Array.from(NF4_CODE)
/** Decision thresholds: midpoints of neighbouring codes, as float32 (the kernel's literals). */
const THRESHOLDS = (() => {
  const t = new Float32Array(16)
  for (let i = 0; i < 15; i++) t[i] = Math.fround((NF4_CODE[i]! + NF4_CODE[i + 1]!) / 2)
  t[15] = Infinity
  return t
})()
/** Lookup resolution over [-1, 1]: bucket b covers [-1 + b/512, -1 + (b+1)/512); at most one threshold falls in a bucket. */
const BUCKETS = 1024
/** For each bucket, the number of thresholds strictly below the bucket's start. */
const BUCKET_CODE = (() => {
  const table = new Uint8Array(BUCKETS)
  for (let b = 0; b < BUCKETS; b++) {
    const lo = -1 + b / 512
    let count = 0
    while (count < 15 && THRESHOLDS[count]! < lo) count++
    table[b] = count
  }
  return table
})()

/** The code of a normalized value x (≈ in [-1, 1]): nearest code, halfway values to the lower one. */
function nf4Code(x: number): number {
  let b = ((x + 1) * 512) | 0
  if (b < 0) b = 0
  else if (b >= BUCKETS) b = BUCKETS - 1
  const c = BUCKET_CODE[b]!
  return x > THRESHOLDS[c]! ? c + 1 : c
}

/** The precondition of NF4 with this block size, as a sentence, or undefined when it holds. */
export function nf4BlockSizeProblem(blockSize: number): string | undefined {
  return NF4_BLOCK_SIZES.includes(blockSize) ? undefined : `block size ${blockSize} is not one bitsandbytes supports (${NF4_BLOCK_SIZES.join(', ')})`
}

/** An NF4-encoded tensor of `count` elements. */
export interface Nf4Encoded {
  readonly count: number
  readonly blockSize: number
  /** ceil(count / 2) bytes, two codes per byte, first element in the high nibble. */
  readonly packed: Uint8Array
  /** The absmax of each block, as measured (used for the codes). */
  readonly absmax: Float32Array
  /** Present with double quantization: the absmax as stored. */
  readonly nested?: Nf4Nested
  /** The code book to decode with, when read from a file (`quant_map`); default `NF4_CODE`. */
  readonly quantMap?: Float32Array
}

/**
 * Encode elements `[start, start + values.length)` of a flattened tensor
 * into its `packed` codes and `absmax` values; `start` is a multiple of the
 * block size, and the piece ends on a block boundary or at the tensor's end.
 * @throws InputError QUANT_NOT_FINITE for NaN or ±Infinity (naming the element index)
 */
export function encodeNf4Elements(packed: Uint8Array, absmax: Float32Array, blockSize: number, start: number, values: Float32Array): void {
  const n = values.length
  for (let b0 = 0; b0 < n; b0 += blockSize) {
    const b1 = Math.min(n, b0 + blockSize)
    let m = 0
    for (let i = b0; i < b1; i++) {
      const a = Math.abs(values[i]!)
      if (!(a <= m)) {
        if (!Number.isFinite(a)) throw notFinite(start + i, values[i]!)
        m = a
      }
    }
    absmax[(start + b0) / blockSize] = m
    const first = (start + b0) >> 1
    const even = (b1 - b0) & ~1
    if (m === 0) {
      packed.fill((NF4_ZERO_CODE << 4) | NF4_ZERO_CODE, first, first + even / 2)
      if (even !== b1 - b0) packed[first + even / 2] = NF4_ZERO_CODE << 4
      continue
    }
    const inv = Math.fround(1 / m)
    // block starts are multiples of blockSize (even), so pairs never straddle blocks; only the tensor's end can be odd
    for (let i = b0, o = first; i < b0 + even; i += 2, o++) packed[o] = (nf4Code(Math.fround(values[i]! * inv)) << 4) | nf4Code(Math.fround(values[i + 1]! * inv))
    if (even !== b1 - b0) packed[first + even / 2] = nf4Code(Math.fround(values[b1 - 1]! * inv)) << 4
  }
}

/** The storage of an nf4 tensor being encoded: packed codes, then (4-byte aligned) the absmax of each block. */
interface Nf4Storage {
  readonly packed: Uint8Array
  readonly absmax: Float32Array
}

function nf4Layout([rows, cols]: readonly [number, number], blockSize: number): {packedBytes: number; absmaxAt: number; blocks: number} {
  const count = rows * cols
  const packedBytes = Math.ceil(count / 2)
  return {packedBytes, absmaxAt: Math.ceil(packedBytes / 4) * 4, blocks: Math.ceil(count / blockSize)}
}

/** NF4 by row ranges (row chunks start on block boundaries: `rowAlignment`). */
const NF4_CODEC: RowCodec<Nf4Storage, Nf4Encoded> = Object.freeze<RowCodec<Nf4Storage, Nf4Encoded>>({
  storageBytes(shape, options) {
    const {absmaxAt, blocks} = nf4Layout(shape, options.blockSize)
    return absmaxAt + blocks * 4
  },
  storage(memory, shape, options) {
    const {packedBytes, absmaxAt, blocks} = nf4Layout(shape, options.blockSize)
    return {packed: new Uint8Array(memory, 0, packedBytes), absmax: new Float32Array(memory, absmaxAt, blocks)}
  },
  encodeRows(storage, [, cols], options, startRow, values) {
    encodeNf4Elements(storage.packed, storage.absmax, options.blockSize, startRow * cols, values)
  },
  complete(storage, [rows, cols], options) {
    const base = {count: rows * cols, blockSize: options.blockSize, packed: storage.packed, absmax: storage.absmax}
    return options.doubleQuant ? {...base, nested: nestAbsmax(storage.absmax)} : base
  },
})

/**
 * Streaming NF4 encoder: push the flattened tensor in pieces whose lengths
 * are multiples of the block size (the last piece may be shorter), then
 * `finish()`.
 */
export class Nf4Encoder {
  readonly packed: Uint8Array
  readonly absmax: Float32Array
  private done = 0

  constructor(
    readonly count: number,
    readonly blockSize: number,
    readonly doubleQuant = false,
  ) {
    const problem = nf4BlockSizeProblem(blockSize)
    if (problem) throw new InputError('QUANT_BAD_BLOCK_SIZE', `nf4: ${problem}`)
    this.packed = new Uint8Array(Math.ceil(count / 2))
    this.absmax = new Float32Array(Math.ceil(count / blockSize))
  }

  /**
   * Encode the next `values.length` elements.
   * @throws InputError QUANT_NOT_FINITE for NaN or ±Infinity (naming the element index)
   * @throws RangeError when the piece does not end on a block boundary before the end
   */
  push(values: Float32Array): void {
    const start = this.done
    const n = values.length
    if (start + n > this.count) throw new RangeError(`nf4: ${start + n} elements pushed, tensor has ${this.count}`)
    if (start + n < this.count && n % this.blockSize !== 0) throw new RangeError(`nf4: a piece of ${n} elements does not end on a block boundary (block size ${this.blockSize})`)
    encodeNf4Elements(this.packed, this.absmax, this.blockSize, start, values)
    this.done += n
  }

  /** All elements pushed: the encoded tensor (double-quantizing the absmax values if asked). */
  finish(): Nf4Encoded {
    if (this.done !== this.count) throw new RangeError(`nf4: ${this.done} of ${this.count} elements pushed`)
    const base = {count: this.count, blockSize: this.blockSize, packed: this.packed, absmax: this.absmax}
    return this.doubleQuant ? {...base, nested: nestAbsmax(this.absmax)} : base
  }
}

const notFinite = (index: number, value: number) => notFiniteError(index, value)

/** Quantize a whole flattened tensor. */
export function quantizeNf4(values: Float32Array, blockSize = NF4_DEFAULT_BLOCK_SIZE, doubleQuant = false): Nf4Encoded {
  const encoder = new Nf4Encoder(values.length, blockSize, doubleQuant)
  encoder.push(values)
  return encoder.finish()
}

/**
 * Decode elements `[start, start + count)` of an NF4 tensor: `code[q] · absmax[block]` in float32.
 * @param absmax the absmax values as a loader sees them (`storedAbsmax`)
 */
export function dequantizeNf4(
  packed: Uint8Array,
  absmax: Float32Array,
  blockSize: number,
  start: number,
  count: number,
  out: Float32Array = new Float32Array(count),
  code: Float32Array = CODE,
): Float32Array {
  const end = start + count
  for (let b0 = start - (start % blockSize); b0 < end; b0 += blockSize) {
    const scale = absmax[b0 / blockSize]!
    let i = Math.max(b0, start)
    const to = Math.min(end, b0 + blockSize)
    if (i & 1 && i < to) {
      out[i - start] = code[packed[i >> 1]! & 0x0f]! * scale
      i++
    }
    for (; i + 1 < to; i += 2) {
      const byte = packed[i >> 1]!
      out[i - start] = code[byte >> 4]! * scale
      out[i + 1 - start] = code[byte & 0x0f]! * scale
    }
    if (i < to) out[i - start] = code[packed[i >> 1]! >> 4]! * scale
  }
  return out
}

// ---------------------------------------------------------------- stored as bitsandbytes does

/** The name suffix of an nf4 weight's quant-state tensor (JSON). */
export const NF4_STATE_SUFFIX = '.quant_state.bitsandbytes__nf4'
/** Room reserved in the quant-state JSON for `nested_offset` (the longest JavaScript number text). */
const OFFSET_TEXT_RESERVE = 24
/** The weight dtypes bitsandbytes records (`float16`, `bfloat16`, `float32`). */
const BNB_DTYPES: readonly DType[] = Object.freeze(['F16', 'BF16', 'F32'])

/** `F16` → `float16` (torch's name, as bitsandbytes writes `dtype`); dtypes bitsandbytes does not record read as `float32`. */
function bnbDtype(dtype: DType): string {
  return BNB_DTYPES.includes(dtype) ? DTYPES[dtype].torch : 'float32'
}

function nf4StateJson(shape: readonly number[], blockSize: number, dtype: DType, offsetText?: string): string {
  const base = `{"quant_type": "nf4", "blocksize": ${blockSize}, "dtype": "${bnbDtype(dtype)}", "shape": [${shape.join(', ')}]`
  return offsetText === undefined ? `${base}}` : `${base}, "nested_blocksize": ${NF4_NESTED_BLOCK_SIZE}, "nested_dtype": "float32", "nested_offset": ${offsetText}}`
}

/** The quant-state JSON, with room for `nested_offset` under double quantization (padded with spaces when written). */
function nf4StateRoom(shape: readonly number[], blockSize: number, dtype: DType, doubleQuant: boolean): string {
  return nf4StateJson(shape, blockSize, dtype, doubleQuant ? '0'.repeat(OFFSET_TEXT_RESERVE) : undefined)
}

function plannedParts(name: string, shape: readonly [number, number], options: BlockOptions, dtype: DType): TensorSpec[] {
  const n = shape[0] * shape[1]
  const blocks = Math.ceil(n / options.blockSize)
  const specs: TensorSpec[] = [
    {name, dtype: 'U8', shape: [Math.ceil(n / 2), 1]},
    {name: `${name}.absmax`, dtype: options.doubleQuant ? 'U8' : 'F32', shape: [blocks]},
    {name: `${name}.quant_map`, dtype: 'F32', shape: [16]},
  ]
  if (options.doubleQuant) {
    specs.push({name: `${name}.nested_absmax`, dtype: 'F32', shape: [Math.ceil(blocks / NF4_NESTED_BLOCK_SIZE)]}, {name: `${name}.nested_quant_map`, dtype: 'F32', shape: [256]})
  }
  specs.push({name: `${name}${NF4_STATE_SUFFIX}`, dtype: 'U8', shape: [nf4StateRoom(shape, options.blockSize, dtype, options.doubleQuant).length]})
  return specs
}

function storedParts(name: string, encoded: EncodedTensor<Nf4Encoded>, dtype: DType): StoredPart[] {
  const e = encoded.data
  const parts = [
    {name, data: e.packed},
    {name: `${name}.absmax`, data: e.nested ? e.nested.codes : bytesOf(e.absmax)},
    {name: `${name}.quant_map`, data: bytesOf(Float32Array.from(NF4_CODE))},
  ]
  if (e.nested) parts.push({name: `${name}.nested_absmax`, data: bytesOf(e.nested.nestedAbsmax)}, {name: `${name}.nested_quant_map`, data: bytesOf(e.nested.code)})
  const json = nf4StateJson(encoded.shape, e.blockSize, dtype, e.nested ? String(e.nested.offset) : undefined).padEnd(nf4StateRoom(encoded.shape, e.blockSize, dtype, e.nested !== undefined).length, ' ')
  parts.push({name: `${name}${NF4_STATE_SUFFIX}`, data: new TextEncoder().encode(json)})
  return parts
}

/** The nf4 weight whose quant state is `stored`; a bitsandbytes state of another type (fp4) is refused. */
async function findWeight(source: TensorSource, stored: string): Promise<StoredQuantTensor | undefined> {
  if (/\.quant_state\.bitsandbytes__[a-z0-9]+$/.test(stored) && !stored.endsWith(NF4_STATE_SUFFIX)) {
    throw partError(source, 'QUANT_UNSUPPORTED', `tensor "${sanitizeName(stored)}" holds a bitsandbytes ${stored.split('__').pop()} quant state; only nf4 is read`)
  }
  return stored.endsWith(NF4_STATE_SUFFIX) ? readNf4State(source, stored.slice(0, -NF4_STATE_SUFFIX.length), stored) : undefined
}

async function readNf4State(source: TensorSource, weight: string, stateName: string): Promise<StoredQuantTensor> {
  const where = `nf4 weight "${sanitizeName(weight)}"`
  const bad = (code: string, problem: string) => partError(source, code, problem)
  const stateInfo = source.tensors.get(stateName)!
  if (stateInfo.dtype !== 'U8' || stateInfo.byteLength > 65536) throw bad('QUANT_BAD_STATE', `${where}: quant state is not a small U8 tensor`)
  let state: Record<string, unknown>
  try {
    state = JSON.parse(new TextDecoder('utf-8', {fatal: true}).decode(await source.readBytes(stateName))) as Record<string, unknown>
  } catch {
    throw bad('QUANT_BAD_STATE', `${where}: quant state is not UTF-8 JSON`)
  }
  const shape = state.shape
  const blockSize = state.blocksize
  const torch = dtypeFromTorch(String(state.dtype))
  const dtype = torch !== undefined && BNB_DTYPES.includes(torch) ? torch : undefined
  if (state.quant_type !== 'nf4') throw bad('QUANT_BAD_STATE', `${where}: quant_type is ${JSON.stringify(state.quant_type)}, expected "nf4"`)
  if (!Array.isArray(shape) || shape.length !== 2 || !shape.every((d) => Number.isSafeInteger(d) && d >= 0)) {
    throw bad('QUANT_BAD_STATE', `${where}: quant state shape ${JSON.stringify(shape)} is not a 2-D shape`)
  }
  if (typeof blockSize !== 'number' || !NF4_BLOCK_SIZES.includes(blockSize)) throw bad('QUANT_BAD_STATE', `${where}: blocksize ${JSON.stringify(blockSize)} is not a bitsandbytes block size`)
  if (!dtype) throw bad('QUANT_BAD_STATE', `${where}: dtype ${JSON.stringify(state.dtype)} is not float16, bfloat16 or float32`)
  const nested = 'nested_offset' in state
  if (nested && (state.nested_blocksize !== NF4_NESTED_BLOCK_SIZE || typeof state.nested_offset !== 'number')) {
    throw bad('QUANT_BAD_STATE', `${where}: nested_blocksize must be ${NF4_NESTED_BLOCK_SIZE} with a numeric nested_offset`)
  }
  const [rows, cols] = shape as [number, number]
  const expect = plannedParts(weight, [rows, cols], {blockSize, doubleQuant: nested}, dtype).slice(0, -1)
  for (const part of expect) {
    const info = source.tensors.get(part.name)
    if (!info) throw bad('QUANT_MISSING_PART', `${where}: tensor "${sanitizeName(part.name)}" is missing`)
    const okShape = info.elementCount === part.shape.reduce((a, b) => a * b, 1)
    if (info.dtype !== part.dtype || !okShape) {
      throw bad('QUANT_BAD_PART', `tensor "${sanitizeName(part.name)}" is ${info.dtype} ${formatShape(info.shape)}, expected ${part.dtype} ${formatShape(part.shape)} for an nf4 weight of shape ${formatShape(shape as number[])}`)
    }
  }
  return {name: weight, scheme: 'nf4', shape: [rows, cols], dtype, blockSize, doubleQuant: nested, parts: [...expect.map((e) => e.name), stateName]}
}

async function readWeight(source: TensorSource, t: StoredQuantTensor): Promise<EncodedTensor<Nf4Encoded>> {
  const w = t.name
  const quantMap = toFloat32('F32', await source.readBytes(`${w}.quant_map`))
  const packed = await source.readBytes(w)
  const count = t.shape[0] * t.shape[1]
  if (!t.doubleQuant) {
    const absmax = toFloat32('F32', await source.readBytes(`${w}.absmax`))
    return {scheme: 'nf4', shape: t.shape, data: {count, blockSize: t.blockSize, packed, absmax, quantMap}}
  }
  const state = JSON.parse(new TextDecoder().decode(await source.readBytes(`${w}${NF4_STATE_SUFFIX}`))) as {nested_offset: number}
  const nested = {
    codes: await source.readBytes(`${w}.absmax`),
    nestedAbsmax: toFloat32('F32', await source.readBytes(`${w}.nested_absmax`)),
    offset: Math.fround(state.nested_offset),
    code: toFloat32('F32', await source.readBytes(`${w}.nested_quant_map`)),
  }
  return {scheme: 'nf4', shape: t.shape, data: {count, blockSize: t.blockSize, packed, absmax: new Float32Array(0), nested, quantMap}}
}

/**
 * transformers' `quantization_config` for a bitsandbytes nf4 checkpoint, every field typed as
 * `BitsAndBytesConfig.post_init` checks it: booleans, torch dtype names, and `llm_int8_threshold`
 * a float (written `6.0`: an integer `6` is a TypeError there).
 */
export function bnbQuantizationConfig(quant: BlockOptions, computeDtype: DType, skipModules: readonly string[]): Record<string, unknown> {
  return {
    _load_in_4bit: true,
    _load_in_8bit: false,
    bnb_4bit_compute_dtype: bnbDtype(computeDtype),
    bnb_4bit_quant_storage: 'uint8',
    bnb_4bit_quant_type: 'nf4',
    bnb_4bit_use_double_quant: quant.doubleQuant,
    llm_int8_enable_fp32_cpu_offload: false,
    llm_int8_has_fp16_weight: false,
    llm_int8_skip_modules: [...skipModules],
    llm_int8_threshold: new JsonFloat(6),
    load_in_4bit: true,
    load_in_8bit: false,
    quant_method: 'bitsandbytes',
  }
}

/** 2-D float `.weight` modules left unquantized, for `llm_int8_skip_modules` (with lm_head, as transformers skips it by default). */
export function skippedModules(tensors: Iterable<{name: string; shape: readonly number[]; dtype: DType}>, quantized: ReadonlySet<string>): string[] {
  const out = new Set<string>(['lm_head'])
  for (const t of tensors) if (t.shape.length === 2 && t.name.endsWith('.weight') && !quantized.has(t.name) && BNB_DTYPES.includes(t.dtype)) out.add(weightModule(t.name))
  return [...out]
}

/** NF4 as a scheme: blocks over the flattened tensor, stored in bitsandbytes' layout with a `quantization_config`. */
export const NF4_SCHEME: SafetensorsScheme<Nf4Encoded> = Object.freeze<SafetensorsScheme<Nf4Encoded>>({
  name: 'nf4',
  description: "bitsandbytes NF4, in the layout transformers + bitsandbytes load (config.json gets a quantization_config)",
  format: 'safetensors',
  // bitsandbytes' Linear4bit holds [out, in]: a Conv1D weight quantized [in, out] would compute x·Wᵀ
  weightsOutIn: true,
  defaultBlockSize: NF4_DEFAULT_BLOCK_SIZE,
  blockSizeFlag: '--block-size',
  blockSizeHelp: `${NF4_BLOCK_SIZES[0]}…${NF4_BLOCK_SIZES[NF4_BLOCK_SIZES.length - 1]}`,
  blocksAlong: 'flattened tensor',
  doubleQuant: true,
  bits: 4,
  bytesPerBlock: (blockSize: number) => blockSize / 2 + 4,
  blockSizeProblem: nf4BlockSizeProblem,
  shapeProblem: (shape: readonly number[]) => twoDProblem(shape),
  rowAlignment: (cols: number, blockSize: number) => blockSize / gcd(cols, blockSize),
  codec: NF4_CODEC,
  decoder(encoded) {
    const absmax = storedAbsmax(encoded.data)
    const {packed, blockSize, quantMap} = encoded.data
    const cols = encoded.shape[1]
    return (start, count, out) => dequantizeNf4(packed, absmax, blockSize, start * cols, count * cols, out, quantMap)
  },
  plannedParts,
  storedParts,
  findWeight,
  readWeight,
  editConfig(config: Record<string, unknown>, model: QuantizedModel) {
    config.quantization_config = bnbQuantizationConfig(model.options, model.mainDtype, skippedModules(model.tensors, model.quantized))
  },
})

function gcd(a: number, b: number): number {
  while (b) [a, b] = [b, a % b]
  return a
}
