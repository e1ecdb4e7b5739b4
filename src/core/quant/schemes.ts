/**
 * The table of 4-bit schemes (block size, bytes per block, where the blocks
 * run, where the result is stored, preconditions as sentences) and the
 * scheme-independent face of an encoded tensor: a streaming encoder and a
 * row decoder.
 *
 * | scheme | block | bytes per block | blocks run along | stored as |
 * |---|---|---|---|---|
 * | nf4  | 64 (`--block-size`, 64…4096) | 32 + 4 (f32 absmax) | the flattened tensor | safetensors, bitsandbytes layout |
 * | q4_0 | 32 (fixed) | 18 (f16 d + 16) | each row (GGML ne[0]) | GGUF |
 * | int4 | 128 (`--group-size`) | g/2 + 2 (f16 scale) + 1 (zero) | each row | safetensors, qweight/scales/zeros |
 */
import {InputError} from '../errors.js'
import {formatShape} from '../shape.js'
import {INT4_DEFAULT_GROUP_SIZE, Int4Encoded, Int4Encoder, dequantizeInt4, int4RowProblem} from './int4.js'
import {NF4_DEFAULT_BLOCK_SIZE, NF4_NESTED_BLOCK_SIZE, Nf4Encoded, Nf4Encoder, dequantizeNf4, nf4BlockSizeProblem, storedAbsmax} from './nf4.js'
import {Q4_0_BLOCK_SIZE, Q4_0_BYTES_PER_BLOCK, Q4_0Encoder, dequantizeQ4_0, q4_0RowProblem} from './q4-0.js'

export const QUANT_SCHEME_NAMES = Object.freeze(['nf4', 'q4_0', 'int4'] as const)
export type QuantSchemeName = (typeof QUANT_SCHEME_NAMES)[number]

export function isQuantSchemeName(name: string): name is QuantSchemeName {
  return (QUANT_SCHEME_NAMES as readonly string[]).includes(name)
}

export interface QuantSchemeInfo {
  readonly name: QuantSchemeName
  readonly defaultBlockSize: number
  /** The flag that sets the block size. */
  readonly blockSizeFlag: '--block-size' | '--group-size'
  readonly blocksAlong: 'flattened tensor' | 'rows'
  readonly format: 'safetensors' | 'gguf'
  /** Stored bytes per block of `blockSize` elements (codes and per-block scale data, without double quantization). */
  bytesPerBlock(blockSize: number): number
  /** Why this block size cannot be used, or undefined. */
  blockSizeProblem(blockSize: number): string | undefined
  /** Why a tensor of this shape cannot be encoded, or undefined. */
  shapeProblem(shape: readonly number[], blockSize: number): string | undefined
  /** Row chunks pushed to an encoder must hold a multiple of this many rows (except the last). */
  rowAlignment(cols: number, blockSize: number): number
}

function gcd(a: number, b: number): number {
  while (b) [a, b] = [b, a % b]
  return a
}

function twoD(shape: readonly number[]): string | undefined {
  return shape.length === 2 ? undefined : `tensor is ${shape.length}-D ${formatShape(shape)}; only 2-D weights are quantized`
}

/** The scheme table. */
export const QUANT_SCHEMES: Readonly<Record<QuantSchemeName, QuantSchemeInfo>> = Object.freeze({
  nf4: Object.freeze({
    name: 'nf4',
    defaultBlockSize: NF4_DEFAULT_BLOCK_SIZE,
    blockSizeFlag: '--block-size',
    blocksAlong: 'flattened tensor',
    format: 'safetensors',
    bytesPerBlock: (blockSize: number) => blockSize / 2 + 4,
    blockSizeProblem: nf4BlockSizeProblem,
    shapeProblem: (shape: readonly number[]) => twoD(shape),
    rowAlignment: (cols: number, blockSize: number) => blockSize / gcd(cols, blockSize),
  } as const),
  q4_0: Object.freeze({
    name: 'q4_0',
    defaultBlockSize: Q4_0_BLOCK_SIZE,
    blockSizeFlag: '--block-size',
    blocksAlong: 'rows',
    format: 'gguf',
    bytesPerBlock: () => Q4_0_BYTES_PER_BLOCK,
    blockSizeProblem: (blockSize: number) => (blockSize === Q4_0_BLOCK_SIZE ? undefined : `Q4_0 blocks are always ${Q4_0_BLOCK_SIZE} elements (got ${blockSize})`),
    shapeProblem: (shape: readonly number[]) => twoD(shape) ?? q4_0RowProblem(shape[1]!),
    rowAlignment: () => 1,
  } as const),
  int4: Object.freeze({
    name: 'int4',
    defaultBlockSize: INT4_DEFAULT_GROUP_SIZE,
    blockSizeFlag: '--group-size',
    blocksAlong: 'rows',
    format: 'safetensors',
    bytesPerBlock: (groupSize: number) => groupSize / 2 + 3,
    blockSizeProblem: (groupSize: number) => int4RowProblem(groupSize, groupSize),
    shapeProblem: (shape: readonly number[], groupSize: number) => twoD(shape) ?? int4RowProblem(shape[1]!, groupSize),
    rowAlignment: () => 1,
  } as const),
})

/** What to quantize to. */
export interface QuantOptions {
  readonly scheme: QuantSchemeName
  /** Elements per block (nf4, q4_0) or per group (int4). */
  readonly blockSize: number
  /** nf4 only: quantize the absmax values too. */
  readonly doubleQuant: boolean
}

/** A 2-D tensor [rows, cols] in one of the schemes. */
export type EncodedTensor =
  | {readonly scheme: 'nf4'; readonly shape: readonly [number, number]; readonly nf4: Nf4Encoded}
  | {readonly scheme: 'q4_0'; readonly shape: readonly [number, number]; readonly blocks: Uint8Array}
  | {readonly scheme: 'int4'; readonly shape: readonly [number, number]; readonly int4: Int4Encoded}

export interface TensorEncoder {
  /** Encode the next rows (row-major float32; see `QuantSchemeInfo.rowAlignment`). */
  push(values: Float32Array): void
  finish(): EncodedTensor
}

/**
 * A streaming encoder for a [rows, cols] tensor.
 * @throws InputError QUANT_PRECONDITION when the block size or shape does not suit the scheme
 */
export function createEncoder(options: QuantOptions, shape: readonly number[]): TensorEncoder {
  const info = QUANT_SCHEMES[options.scheme]
  const problem = info.blockSizeProblem(options.blockSize) ?? info.shapeProblem(shape, options.blockSize)
  if (problem) throw new InputError('QUANT_PRECONDITION', `${options.scheme}: ${problem}`)
  const [rows, cols] = shape as [number, number]
  const dims = [rows, cols] as const
  switch (options.scheme) {
    case 'nf4': {
      const e = new Nf4Encoder(rows * cols, options.blockSize, options.doubleQuant)
      return {push: (v) => e.push(v), finish: () => ({scheme: 'nf4', shape: dims, nf4: e.finish()})}
    }
    case 'q4_0': {
      const e = new Q4_0Encoder(rows * cols)
      return {push: (v) => e.push(v), finish: () => ({scheme: 'q4_0', shape: dims, blocks: e.finish()})}
    }
    case 'int4': {
      const e = new Int4Encoder(rows, cols, options.blockSize)
      return {push: (v) => e.push(v), finish: () => ({scheme: 'int4', shape: dims, int4: e.finish()})}
    }
  }
}

/** Reads rows of an encoded tensor back as float32 (what a loader computes). */
export interface TensorDecoder {
  readonly shape: readonly [number, number]
  decodeRows(startRow: number, rowCount: number, out?: Float32Array): Float32Array
}

export function createDecoder(encoded: EncodedTensor): TensorDecoder {
  const [, cols] = encoded.shape
  switch (encoded.scheme) {
    case 'nf4': {
      const absmax = storedAbsmax(encoded.nf4)
      const {packed, blockSize, quantMap} = encoded.nf4
      return {shape: encoded.shape, decodeRows: (start, count, out) => dequantizeNf4(packed, absmax, blockSize, start * cols, count * cols, out, quantMap)}
    }
    case 'q4_0': {
      const blocksPerRow = cols / Q4_0_BLOCK_SIZE
      return {
        shape: encoded.shape,
        decodeRows: (start, count, out) => dequantizeQ4_0(encoded.blocks, start * blocksPerRow * Q4_0_BYTES_PER_BLOCK, count * blocksPerRow, out),
      }
    }
    case 'int4':
      return {shape: encoded.shape, decodeRows: (start, count, out) => dequantizeInt4(encoded.int4, start, count, out)}
  }
}

/** Quantize then decode a whole tensor (test and reference helper). */
export function roundTrip(options: QuantOptions, shape: readonly [number, number], values: Float32Array): Float32Array {
  const encoder = createEncoder(options, shape)
  encoder.push(values)
  return createDecoder(encoder.finish()).decodeRows(0, shape[0])
}

export {NF4_NESTED_BLOCK_SIZE}
