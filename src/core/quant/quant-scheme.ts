/**
 * The one interface every quantization scheme implements. A scheme is one
 * file (`nf4.ts`, `q4-0.ts`, `int4.ts`, `q8-0.ts`) exporting one object of
 * this type, listed once in the registry (`schemes.ts`); `quantize`,
 * `merge --quantize`, `merge --from-quantized`, the model reader and writer
 * and the quality report look a scheme up there and never branch on its name.
 *
 * A scheme says:
 * - its rules: default block size and the flag that sets it, where blocks run,
 *   bytes per block, preconditions as sentences;
 * - its codec: a streaming encoder (row chunks in) and a row decoder;
 * - how it is stored: as named safetensors parts (`SafetensorsScheme`), or as
 *   one GGML tensor type in GGUF (`GgufScheme`, with its GGML type and
 *   llama.cpp's `general.file_type`);
 * - what a quantized model carries beside its tensors: safetensors
 *   `__metadata__` entries and edits to `config.json`.
 */
import type {DType} from '../dtype.js'
import {InputError} from '../errors.js'
import type {GgmlTypeName} from '../formats/gguf-types.js'
import type {TensorSpec} from '../formats/safetensors-header.js'
import type {TensorSource} from '../formats/tensor-source.js'
import {formatShape} from '../shape.js'

/** Block settings of one encoding. */
export interface BlockOptions {
  /** Elements per block (nf4, q4_0, q8_0) or per group (int4). */
  readonly blockSize: number
  /** Quantize the per-block scales too (only schemes whose `doubleQuant` is true). */
  readonly doubleQuant: boolean
}

/** A 2-D tensor [rows, cols] encoded with scheme `scheme`; `data` is that scheme's own form. */
export interface EncodedTensor<D = unknown> {
  readonly scheme: string
  readonly shape: readonly [number, number]
  readonly data: D
}

/**
 * A scheme's encoder as independent row ranges over one block of memory.
 * The encoded storage of a [rows, cols] tensor is laid out in one buffer
 * (`storageBytes`, `storage`); any range of whole rows starting at a multiple
 * of `rowAlignment` is encoded into it (`encodeRows`) by any thread, in any
 * order; `complete` turns the filled storage into the scheme's data. The
 * streaming encoder (`createEncoder`) and the worker threads of `lora
 * quantize` (`encode-pool.ts`) both run this, so threads change no byte.
 * Every byte of the storage is written once all rows are in: memory may be reused.
 */
export interface RowCodec<S, D> {
  /** Bytes of memory the storage of a [rows, cols] tensor takes. */
  storageBytes(shape: readonly [number, number], options: BlockOptions): number
  /** Views of the storage laid out in `memory` from byte 0 (at least `storageBytes` long; a SharedArrayBuffer when threads share it). */
  storage(memory: ArrayBufferLike, shape: readonly [number, number], options: BlockOptions): S
  /**
   * Encode rows `[startRow, startRow + values.length / cols)` (row-major float32) into `storage`.
   * @throws InputError for values the scheme cannot encode (element indices counted in the whole tensor)
   */
  encodeRows(storage: S, shape: readonly [number, number], options: BlockOptions, startRow: number, values: Float32Array): void
  /**
   * The same for rows given as binary16 bits: `rowCount` rows from `bits[from]` on, encoded without a
   * float32 copy (the hot path of quantizing an F16 model). Writes exactly the bytes `encodeRows` writes
   * for the same values, errors included. Optional.
   */
  encodeRowsF16?(storage: S, shape: readonly [number, number], options: BlockOptions, startRow: number, bits: Uint16Array, from: number, rowCount: number): void
  /** The encoded data once every row is in (views of the storage where the scheme keeps them as they are). */
  complete(storage: S, shape: readonly [number, number], options: BlockOptions): D
}

/** Rows `[startRow, startRow + rowCount)` of an encoded tensor as float32 (what a loader computes). */
export type RowDecoder = (startRow: number, rowCount: number, out?: Float32Array) => Float32Array

/** One stored tensor of an encoded weight and its bytes. */
export interface StoredPart {
  readonly name: string
  readonly data: Uint8Array
}

/** A weight stored in a scheme's parts inside a safetensors model. */
export interface StoredQuantTensor {
  /** The weight's name (`….q_proj.weight`). */
  readonly name: string
  readonly scheme: string
  readonly shape: readonly [number, number]
  /** The float dtype the weight had. */
  readonly dtype: DType
  readonly blockSize: number
  readonly doubleQuant: boolean
  /** The stored tensors that make it up. */
  readonly parts: readonly string[]
}

/** A model being written with a scheme: what its config and metadata are derived from. */
export interface QuantizedModel {
  readonly options: BlockOptions
  /** The float dtype most quantized weights had (recorded as the compute dtype). */
  readonly mainDtype: DType
  /** Every logical tensor of the model. */
  readonly tensors: Iterable<{readonly name: string; readonly shape: readonly number[]; readonly dtype: DType}>
  /** Names of the weights written in the scheme. */
  readonly quantized: ReadonlySet<string>
}

/** What every scheme has, whatever its storage. */
interface SchemeBase<D> {
  readonly name: string
  /** One phrase for help texts: what it is and where it is written. */
  readonly description: string
  readonly defaultBlockSize: number
  /** The flag that sets the block size. */
  readonly blockSizeFlag: '--block-size' | '--group-size'
  /** The block sizes it takes, for help texts (`64…4096`, `32`). */
  readonly blockSizeHelp: string
  readonly blocksAlong: 'flattened tensor' | 'rows'
  /** Whether `--double-quant` applies. */
  readonly doubleQuant: boolean
  /** Bits per stored code (4 for 4-bit schemes, 8 for q8_0). */
  readonly bits: number
  /** Stored bytes per block of `blockSize` elements (codes and per-block scale data, without double quantization). */
  bytesPerBlock(blockSize: number): number
  /** Why this block size cannot be used, or undefined. */
  blockSizeProblem(blockSize: number): string | undefined
  /** Why a tensor of this shape cannot be encoded, or undefined. */
  shapeProblem(shape: readonly number[], blockSize: number): string | undefined
  /** Row chunks pushed to an encoder must hold a multiple of this many rows (except the last). */
  rowAlignment(cols: number, blockSize: number): number
  /** The encoder, by row ranges, of a [rows, cols] tensor whose block size and shape passed the checks above. */
  readonly codec: RowCodec<any, D>
  /** The row decoder of an encoded tensor. */
  decoder(encoded: EncodedTensor<D>): RowDecoder
  /** safetensors `__metadata__` entries of a model written with the scheme. */
  metadata?(model: QuantizedModel): Record<string, string>
  /** Edit `config.json` (parsed) of a model written with the scheme. */
  editConfig?(config: Record<string, unknown>, model: QuantizedModel): void
}

/** A scheme stored as named tensors in safetensors. */
export interface SafetensorsScheme<D = unknown> extends SchemeBase<D> {
  readonly format: 'safetensors'
  /**
   * Whether the loader holds every weight [out, in] (bitsandbytes): GPT-2's Conv1D
   * weights, stored [in, out], are then transposed before encoding and recorded [out, in].
   */
  readonly weightsOutIn?: boolean
  /** The stored tensors that will hold weight `name` [rows, cols], with exact sizes, before encoding. */
  plannedParts(name: string, shape: readonly [number, number], options: BlockOptions, dtype: DType): TensorSpec[]
  /** The bytes of each planned part, in `plannedParts` order. */
  storedParts(name: string, encoded: EncodedTensor<D>, dtype: DType): StoredPart[]
  /**
   * When stored tensor `stored` marks a weight of this scheme (its state or
   * main part), that weight with its parts checked (headers and small state
   * tensors only); undefined otherwise.
   * @throws InputError for inconsistent parts
   */
  findWeight(source: TensorSource, stored: string, metadata: ReadonlyMap<string, string>): Promise<StoredQuantTensor | undefined>
  /** Read every part of a stored weight. */
  readWeight(source: TensorSource, weight: StoredQuantTensor): Promise<EncodedTensor<D>>
}

/** A scheme stored as one GGML tensor type in GGUF. */
export interface GgufScheme<D = unknown> extends SchemeBase<D> {
  readonly format: 'gguf'
  /** The GGML tensor type (its id, block size and bytes per block are in `formats/gguf-types.ts`). */
  readonly ggmlType: GgmlTypeName
  /** llama.cpp's `general.file_type` (`LLAMA_FTYPE_MOSTLY_…`) of a model quantized with it. */
  readonly fileType: number
  /** The tensor data as GGUF stores it (one part, named like the tensor). */
  storedParts(name: string, encoded: EncodedTensor<D>, dtype: DType): StoredPart[]
  /** The encoded tensor from its GGUF data. */
  fromGguf(bytes: Uint8Array, shape: readonly [number, number]): EncodedTensor<D>
}

/** A quantization scheme. */
export type QuantScheme<D = unknown> = SafetensorsScheme<D> | GgufScheme<D>

/** The 2-D precondition every scheme shares, as a sentence, or undefined when it holds. */
export function twoDProblem(shape: readonly number[]): string | undefined {
  return shape.length === 2 ? undefined : `tensor is ${shape.length}-D ${formatShape(shape)}; only 2-D weights are quantized`
}

/** The error for a value a scheme cannot encode (NaN, ±Infinity). */
export function notFiniteError(index: number, value: number, bits = 4): InputError {
  return new InputError('QUANT_NOT_FINITE', `element ${index} is ${value}: ${bits}-bit schemes cannot encode NaN or infinity`)
}

/**
 * The error for the first NaN or ±Infinity among `length` binary16 values `bits[start…]`
 * (the same one `notFiniteError` gives for their float32 values).
 * @param index the tensor index of bits[start]
 */
export function notFiniteF16(bits: Uint16Array, start: number, length: number, index: number, width = 4): InputError {
  let j = 0
  while (j < length - 1 && (bits[start + j]! & 0x7c00) !== 0x7c00) j++
  const h = bits[start + j]!
  return notFiniteError(index + j, (h & 0x3ff) !== 0 ? Number.NaN : h & 0x8000 ? -Infinity : Infinity, width)
}

/** The module a weight belongs to: `x.q_proj.weight` → `x.q_proj` (other names unchanged). */
export function weightModule(name: string): string {
  return name.endsWith('.weight') ? name.slice(0, -'.weight'.length) : name
}

/** The error for a stored part that is not what its scheme expects. */
export function partError(source: TensorSource, code: string, problem: string): InputError {
  return new InputError(code, `read ${source.path}: ${problem}`)
}

/** Quantizes whole blocks of `values` into `out` at byte `outOffset`; `firstIndex` is the tensor index of values[0], for messages. */
export type BlockQuantizer = (values: Float32Array, out: Uint8Array, outOffset: number, firstIndex: number) => void

/** The same as `BlockQuantizer` on `count` binary16 values `bits[from…]` (the same bytes and errors as on their float32 values). */
export type F16BlockQuantizer = (bits: Uint16Array, from: number, count: number, out: Uint8Array, outOffset: number, firstIndex: number) => void

/**
 * The row codec of a GGML block type (blocks run along rows): rows are
 * contiguous in the encoded bytes, `cols / blockSize · bytesPerBlock` each.
 */
export function ggmlRowCodec(blockSize: number, bytesPerBlock: number, quantize: BlockQuantizer, quantizeF16?: F16BlockQuantizer): RowCodec<Uint8Array, Uint8Array> {
  const rowBytes = (cols: number) => (cols / blockSize) * bytesPerBlock
  return Object.freeze<RowCodec<Uint8Array, Uint8Array>>({
    storageBytes: ([rows, cols]) => rows * rowBytes(cols),
    storage: (memory, [rows, cols]) => new Uint8Array(memory, 0, rows * rowBytes(cols)),
    encodeRows: (bytes, [, cols], _options, startRow, values) => quantize(values, bytes, startRow * rowBytes(cols), startRow * cols),
    ...(quantizeF16
      ? {encodeRowsF16: (bytes: Uint8Array, [, cols]: readonly [number, number], _options: BlockOptions, startRow: number, bits: Uint16Array, from: number, rowCount: number) => quantizeF16(bits, from, rowCount * cols, bytes, startRow * rowBytes(cols), startRow * cols)}
      : {}),
    complete: (bytes) => bytes,
  })
}

/** Streaming encoder of a GGML block type (blocks run along rows): push whole rows, any number at a time, then `finish()`. */
export class GgmlBlockEncoder {
  readonly bytes: Uint8Array
  private done = 0

  constructor(
    /** The scheme's name, for messages. */
    readonly scheme: string,
    /** Elements of the whole tensor. */
    readonly count: number,
    private readonly blockSize: number,
    private readonly bytesPerBlock: number,
    private readonly quantize: BlockQuantizer,
  ) {
    if (count % blockSize !== 0) throw new RangeError(`${scheme}: ${count} elements is not a whole number of blocks`)
    this.bytes = new Uint8Array((count / blockSize) * bytesPerBlock)
  }

  /** Encode the next whole rows. */
  push(values: Float32Array): void {
    if (this.done + values.length > this.count) throw new RangeError(`${this.scheme}: ${this.done + values.length} elements pushed, tensor has ${this.count}`)
    this.quantize(values, this.bytes, (this.done / this.blockSize) * this.bytesPerBlock, this.done)
    this.done += values.length
  }

  /** All elements pushed: the blocks as GGUF stores them. */
  finish(): Uint8Array {
    if (this.done !== this.count) throw new RangeError(`${this.scheme}: ${this.done} of ${this.count} elements pushed`)
    return this.bytes
  }
}
