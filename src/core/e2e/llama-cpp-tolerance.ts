/**
 * How the llama.cpp peer's tokens are checked. llama.cpp computes in its own
 * precision, coarser than the float32 reference's: its KV cache holds keys
 * and values in binary16 (llama-server's default), an F16 model's products
 * take their activations in binary16, and a Q4_0 model's take them quantized
 * to Q8_0 (int8 per block of 32). So at a near tie it can pick another of the
 * top tokens than the reference does. Its check is the reference check
 * (`checkTokens`) with a tolerance of `PEER_TIE_UNITS` units of the coarsest
 * rounding in its arithmetic, relative to the largest logit:
 *
 * | base | coarsest rounding | unit | tolerance |
 * |---|---|---|---|
 * | f32, f16 | binary16 (KV cache; F16 products' activations) | 2⁻¹¹ ≈ 4.9e-4 | ≈ 3.9e-3 |
 * | q4 | Q8_0 activations (half a step of amax/127) | 1/254 ≈ 3.9e-3 | ≈ 3.1e-2 |
 *
 * Measured on synthetic Llamas (hidden 256, 512 and 1024, 4 layers, 32
 * requests of 32 prompt and 64 generated tokens, rank-16 adapters on q,k,v,o;
 * `docs/bench.md`): where llama.cpp diverged, the reference's gap between its
 * best token and llama.cpp's was at most 5.3e-4 of the largest logit with an
 * F32 or F16 model (1.1 binary16 units) and 1.2e-2 with Q4_0 (3.1 units of
 * Q8_0), and llama.cpp's token was always among the reference's top three. Anything past the tolerance, or outside the
 * reference's top four, is a mismatch and fails the run naming the request.
 */
import type {BaseDtype} from './base-dtype.js'

/** Unit of the coarsest rounding llama.cpp applies, per base dtype of the run (the model GGUF's type follows it). */
export const LLAMA_CPP_ROUNDING_UNIT: Readonly<Record<BaseDtype, number>> = Object.freeze({
  // binary16 KV cache (and, for F16 weights, binary16 activations): half an ulp of 1
  f32: 2 ** -11,
  f16: 2 ** -11,
  // Q8_0 activations: values rounded to steps of amax/127, at most half a step off
  q4: 1 / 254,
})

/** Rounding units the peer's tie tolerance allows (the measured worst was 3.1). */
export const PEER_TIE_UNITS = 8

/** The llama.cpp peer's tie tolerance for a run of `dtype` (never below the run's own). */
export function llamaCppTieTolerance(dtype: BaseDtype, runTolerance: number): number {
  return Math.max(runTolerance, PEER_TIE_UNITS * LLAMA_CPP_ROUNDING_UNIT[dtype])
}
