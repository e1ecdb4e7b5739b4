/**
 * Weight transforms that build a variant in memory as `lora` would write
 * and a server would load it:
 *
 * - `quantizedWeights`: the weights `lora quantize` (and `lora merge
 *   --quantize`) encode (the 2-D linear weights inside the numbered blocks;
 *   embeddings, head and norms stay in float) through the project's own
 *   encoder of the scheme; a tensor the scheme cannot hold (q4_0 rows that
 *   are not a multiple of 32, int4 rows not a multiple of the group) stays
 *   in float, as those commands keep it. A scheme stored as a GGML type
 *   onnxruntime's `MatMulNBits` runs exactly (Q4_0, Q8_0: `MATMUL_NBITS`)
 *   runs natively from its GGUF bytes; the others (nf4, int4) are decoded to
 *   float32, as the runtime (and bitsandbytes' dequantize-then-matmul)
 *   serves them.
 * - `roundedWeights`: every tensor rounded to f16 or bf16 (what `lora merge
 *   --dtype f16` writes), computed in float32.
 */
import {fromFloat, toFloat32} from '../dtype.js'
import {QUANT_SCHEMES, QuantOptions, createDecoder, createEncoder} from '../quant/schemes.js'
import {isBlockLinearWeight} from '../quant/selection.js'
import {DecoderWeights, mapLinearWeights, mapWeights} from '../runtime/decoder-weights.js'
import {LinearWeight, NBitsLinear, floatLinear, linearValues, q4_0ToNBits, q8_0ToNBits} from '../runtime/linear-weight.js'

/** GGML block types `MatMulNBits` runs exactly, and the converter of their GGUF bytes. */
export const MATMUL_NBITS: Readonly<Record<string, (bytes: Uint8Array, out: number, inDim: number) => NBitsLinear>> = Object.freeze({Q4_0: q4_0ToNBits, Q8_0: q8_0ToNBits})

/** What a quantized variant holds, filled in as the graph reads its weights. */
export interface QuantizedWeightStats {
  /** Weights encoded with the scheme. */
  quantized: number
  /** Weights the scheme would encode but cannot hold, left in float, with the reason. */
  kept: Array<{name: string; reason: string}>
}

/** An empty stats record. */
export function emptyQuantStats(): QuantizedWeightStats {
  return {quantized: 0, kept: []}
}

/** Whether `lora quantize`'s default rule encodes this weight (a block's linear weight; not an embedding, head or norm). */
export function isQuantizedByDefault(name: string, w: LinearWeight): boolean {
  return isBlockLinearWeight(name, [w.out, w.in], 'F32')
}

/**
 * Encode one weight with a scheme and return it as the runtime runs it
 * (`MATMUL_NBITS` types as blocks; the others decoded to float32).
 * @throws InputError for values the scheme cannot encode (NaN, ±Infinity, scale overflow)
 */
export function quantizeLinear(w: LinearWeight, quant: QuantOptions): LinearWeight {
  const encoder = createEncoder(quant, [w.out, w.in])
  encoder.push(linearValues(w))
  const encoded = encoder.finish()
  const scheme = QUANT_SCHEMES[quant.scheme]
  const native = scheme.format === 'gguf' ? MATMUL_NBITS[scheme.ggmlType] : undefined
  if (native) return native(scheme.storedParts('weight', encoded, 'F32')[0]!.data, w.out, w.in)
  return floatLinear(createDecoder(encoded).decodeRows(0, w.out), w.out, w.in)
}

/**
 * `weights` with the weights `select` picks (default: `lora quantize`'s
 * rule) encoded with `quant`; `stats` counts them as the graph reads them.
 */
export function quantizedWeights(weights: DecoderWeights, quant: QuantOptions, stats: QuantizedWeightStats = emptyQuantStats(), select: (name: string, w: LinearWeight) => boolean = isQuantizedByDefault): DecoderWeights {
  const scheme = QUANT_SCHEMES[quant.scheme]
  return mapLinearWeights(weights, (name, w) => {
    if (!select(name, w)) return w
    const problem = scheme.shapeProblem([w.out, w.in], quant.blockSize)
    if (problem) {
      stats.kept.push({name, reason: problem})
      return w
    }
    stats.quantized++
    return quantizeLinear(w, quant)
  })
}

/** Float dtypes a variant can be rounded to. */
export const ROUNDING_DTYPES = Object.freeze({f16: 'F16', bf16: 'BF16'} as const)
/** `f16` or `bf16`. */
export type RoundingDtype = keyof typeof ROUNDING_DTYPES

function rounded(values: Float32Array, dtype: RoundingDtype): Float32Array {
  const name = ROUNDING_DTYPES[dtype]
  return toFloat32(name, fromFloat(name, values))
}

/** `weights` with every tensor (linear weights, embedding, norms, biases) rounded to `dtype` (round to nearest even). */
export function roundedWeights(weights: DecoderWeights, dtype: RoundingDtype): DecoderWeights {
  return mapWeights(weights, {
    vector: (_name, values) => rounded(values, dtype),
    linear: (_name, w) => floatLinear(rounded(linearValues(w), dtype), w.out, w.in),
  })
}
