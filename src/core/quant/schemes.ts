/**
 * The registry of quantization schemes: one line per scheme (each is one file
 * implementing `QuantScheme`, see `quant-scheme.ts`), and the
 * scheme-independent face of an encoded tensor: a streaming encoder and a row
 * decoder, looked up here by name.
 *
 * | scheme | block | bytes per block | blocks run along | stored as |
 * |---|---|---|---|---|
 * | nf4  | 64 (`--block-size`, 64…4096) | 32 + 4 (f32 absmax) | the flattened tensor | safetensors, bitsandbytes layout |
 * | q4_0 | 32 (fixed) | 18 (f16 d + 16) | each row (GGML ne[0]) | GGUF, GGML type Q4_0 |
 * | int4 | 128 (`--group-size`) | g/2 + 2 (f16 scale) + 1 (zero) | each row | safetensors, qweight/scales/zeros |
 * | q8_0 | 32 (fixed) | 34 (f16 d + 32 int8) | each row (GGML ne[0]) | GGUF, GGML type Q8_0 |
 */
import {InputError, UsageError} from '../errors.js'
import {INT4_SCHEME} from './int4.js'
import {NF4_NESTED_BLOCK_SIZE, NF4_SCHEME} from './nf4.js'
import {Q4_0_SCHEME} from './q4-0.js'
import {Q8_0_SCHEME} from './q8-0.js'
import type {BlockOptions, EncodedTensor, QuantScheme, QuantizedModel} from './quant-scheme.js'

const registry = {
  nf4: NF4_SCHEME,
  q4_0: Q4_0_SCHEME,
  int4: INT4_SCHEME,
  q8_0: Q8_0_SCHEME,
}

/** A registered scheme's name (`nf4`, `q4_0`, `int4`, `q8_0`). */
export type QuantSchemeName = keyof typeof registry

/** The scheme table, by name. */
export const QUANT_SCHEMES: Readonly<Record<QuantSchemeName, QuantScheme>> = Object.freeze(registry)

/** Every scheme's name, in registry order (the `--scheme` / `--quantize` choices). */
export const QUANT_SCHEME_NAMES: readonly QuantSchemeName[] = Object.freeze(Object.keys(registry) as QuantSchemeName[])

/** A scheme as its table entry. */
export type QuantSchemeInfo = QuantScheme

/** Whether `name` is a registered scheme. */
export function isQuantSchemeName(name: string): name is QuantSchemeName {
  return Object.prototype.hasOwnProperty.call(registry, name)
}

/** The scheme stored in GGUF as this GGML type, if any. */
export function schemeOfGgmlType(type: string): QuantSchemeName | undefined {
  return QUANT_SCHEME_NAMES.find((n) => {
    const s = QUANT_SCHEMES[n]
    return s.format === 'gguf' && s.ggmlType === type
  })
}

/** What to quantize to. */
export interface QuantOptions extends BlockOptions {
  readonly scheme: QuantSchemeName
}

export type {EncodedTensor}

/** Streams a [rows, cols] tensor into an encoded tensor. */
export interface TensorEncoder {
  /** Encode the next rows (row-major float32; see `QuantScheme.rowAlignment`). */
  push(values: Float32Array): void
  finish(): EncodedTensor
}

/** Reads rows of an encoded tensor back as float32 (what a loader computes). */
export interface TensorDecoder {
  readonly shape: readonly [number, number]
  decodeRows(startRow: number, rowCount: number, out?: Float32Array): Float32Array
}

/**
 * Check scheme, block size and format against each other (the flags of `quantize` and `merge`).
 * @throws UsageError naming the flag
 */
export function resolveQuantOptions(scheme: QuantSchemeName, blockSize: number | undefined, doubleQuant: boolean | undefined, format?: 'safetensors' | 'gguf'): {quant: QuantOptions; format: 'safetensors' | 'gguf'} {
  const info = QUANT_SCHEMES[scheme]
  const size = blockSize ?? info.defaultBlockSize
  const problem = info.blockSizeProblem(size)
  if (problem) throw new UsageError('BAD_FLAG', `${info.blockSizeFlag}: ${problem}`)
  if (doubleQuant && !info.doubleQuant) {
    const takers = QUANT_SCHEME_NAMES.filter((n) => QUANT_SCHEMES[n].doubleQuant)
    throw new UsageError('BAD_FLAG', `--double-quant applies to ${takers.join(', ')} only (got --scheme ${scheme})`)
  }
  const fmt = format ?? info.format
  if (fmt !== info.format) throw new UsageError('BAD_FLAG', `--format ${fmt}: ${scheme} is written as ${info.format}${info.format === 'gguf' ? ' (GGUF is the format llama.cpp reads)' : ''}`)
  return {quant: {scheme, blockSize: size, doubleQuant: doubleQuant ?? false}, format: fmt}
}

/** The safetensors `__metadata__` entries and the `config.json` edit of a model written with `quant` (each undefined when the scheme has none). */
export function schemeOutput(quant: QuantOptions, model: Omit<QuantizedModel, 'options'>): {metadata?: Record<string, string>; editConfig?: (config: Record<string, unknown>) => void} {
  const scheme = QUANT_SCHEMES[quant.scheme]
  const full: QuantizedModel = {...model, options: quant}
  return {
    metadata: scheme.metadata?.(full),
    editConfig: scheme.editConfig ? (config) => scheme.editConfig!(config, full) : undefined,
  }
}

/**
 * The preconditions of encoding a tensor of `shape` with `options`, checked before any work.
 * @throws InputError QUANT_PRECONDITION when the block size or shape does not suit the scheme
 */
export function checkEncodable(options: QuantOptions, shape: readonly number[]): readonly [number, number] {
  const scheme = QUANT_SCHEMES[options.scheme]
  const problem = scheme.blockSizeProblem(options.blockSize) ?? scheme.shapeProblem(shape, options.blockSize)
  if (problem) throw new InputError('QUANT_PRECONDITION', `${options.scheme}: ${problem}`)
  return [shape[0]!, shape[1]!] as const
}

/**
 * A streaming encoder for a [rows, cols] tensor, on the calling thread: the
 * scheme's row codec (`QuantScheme.codec`) over memory of its own.
 * @throws InputError QUANT_PRECONDITION when the block size or shape does not suit the scheme
 */
export function createEncoder(options: QuantOptions, shape: readonly number[]): TensorEncoder {
  const dims = checkEncodable(options, shape)
  const codec = QUANT_SCHEMES[options.scheme].codec
  const storage = codec.storage(new ArrayBuffer(codec.storageBytes(dims, options)), dims, options)
  const [rows, cols] = dims
  let row = 0
  return {
    push(values) {
      const count = values.length / cols
      if (!Number.isInteger(count) || row + count > rows) throw new RangeError(`${options.scheme}: ${values.length} values are not whole rows of ${cols} within the tensor's ${rows} (at row ${row})`)
      codec.encodeRows(storage, dims, options, row, values)
      row += count
    },
    finish() {
      if (row !== rows) throw new RangeError(`${options.scheme}: ${row} of ${rows} rows pushed`)
      return {scheme: options.scheme, shape: dims, data: codec.complete(storage, dims, options)}
    },
  }
}

/** The row decoder of an encoded tensor. */
export function createDecoder(encoded: EncodedTensor): TensorDecoder {
  if (!isQuantSchemeName(encoded.scheme)) throw new RangeError(`no quantization scheme named "${encoded.scheme}"`)
  return {shape: encoded.shape, decodeRows: QUANT_SCHEMES[encoded.scheme].decoder(encoded)}
}

/** Quantize then decode a whole tensor (test and reference helper). */
export function roundTrip(options: QuantOptions, shape: readonly [number, number], values: Float32Array): Float32Array {
  const encoder = createEncoder(options, shape)
  encoder.push(values)
  return createDecoder(encoder.finish()).decodeRows(0, shape[0])
}

export {NF4_NESTED_BLOCK_SIZE}

/** Whether the scheme's loader holds weights [out, in] (`SafetensorsScheme.weightsOutIn`), so Conv1D weights are transposed before encoding. */
export function transposesConv1D(scheme: QuantSchemeName): boolean {
  const s = QUANT_SCHEMES[scheme]
  return s.format === 'safetensors' && s.weightsOutIn === true
}
