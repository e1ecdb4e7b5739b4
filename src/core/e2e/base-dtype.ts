/**
 * The base weights' storage in an end-to-end run (`--base-dtype`), as a
 * variant of any decoder's weights (`mapLinearWeights`):
 * - `f32`: as read;
 * - `f16`: every linear weight rounded to binary16 once (the CPU graph
 *   computes in f32: same speed as f32 there, the weights' values only);
 * - `q4`: every linear weight whose rows are a multiple of 32 (projections
 *   and the output head) quantized to Q4_0 and run through onnxruntime's
 *   `MatMulNBits` (4-bit blocks, f32 scales); the embedding table stays f32
 *   (it is a Gather, not a product). Adapters stay unmerged in f32 beside it,
 *   the way QLoRA-style models are served.
 */
import {fromFloat, toFloat32} from '../dtype.js'
import {Q4_0_BLOCK_SIZE, quantizeQ4_0} from '../quant/q4-0.js'
import {DecoderWeights, mapLinearWeights} from '../runtime/decoder-weights.js'
import {floatLinear, linearValues, q4_0ToNBits} from '../runtime/linear-weight.js'

/** Base weight storages `--base-dtype` takes. */
export const BASE_DTYPES = ['f32', 'f16', 'q4'] as const
/** A base weight storage. */
export type BaseDtype = (typeof BASE_DTYPES)[number]

const EMBEDDING = 'model.embed_tokens.weight'

/** `weights` stored as `dtype` (see the module comment); `f32` returns them unchanged. */
export function baseVariant(weights: DecoderWeights, dtype: BaseDtype): DecoderWeights {
  if (dtype === 'f32') return weights
  return mapLinearWeights(weights, (name, w) => {
    if (name === EMBEDDING) return w
    const values = linearValues(w)
    if (dtype === 'f16') return floatLinear(toFloat32('F16', fromFloat('F16', values)), w.out, w.in)
    return w.in % Q4_0_BLOCK_SIZE === 0 ? q4_0ToNBits(quantizeQ4_0(values), w.out, w.in) : w
  })
}

/** Bytes the variant's linear weights take as the graph holds them (f32: 4 per value; q4: 4 bits + an f32 scale per 32). */
export function linearWeightBytes(out: number, inDim: number, dtype: BaseDtype): number {
  if (dtype === 'q4' && inDim % Q4_0_BLOCK_SIZE === 0) return (out * inDim) / 2 + (out * inDim * 4) / Q4_0_BLOCK_SIZE
  return out * inDim * 4
}
