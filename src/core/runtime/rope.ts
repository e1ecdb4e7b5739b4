/**
 * Rotary position embedding tables (transformers' definitions): inverse
 * frequencies `θ^(−2i/d)` for i < d/2, scaled for `rope_scaling` (linear:
 * divided by the factor; llama3: low frequencies divided, high ones kept,
 * a smooth blend between) or divided by a GGUF's per-dimension factors, and
 * the cos/sin tables `[positions, d/2]` computed in float64, then rounded
 * to float32. The graph rotates (i, i + d/2) pairs ("rotate half").
 */
import type {DecoderConfig} from './decoder-config.js'

/** Inverse frequencies `[headDim / 2]` in float64, with the configured scaling. */
export function inverseFrequencies(config: Pick<DecoderConfig, 'headDim' | 'ropeTheta' | 'ropeScaling' | 'ropeFreqFactors'>): Float64Array {
  const half = config.headDim / 2
  const inv = new Float64Array(half)
  for (let i = 0; i < half; i++) inv[i] = 1 / config.ropeTheta ** ((2 * i) / config.headDim)
  const s = config.ropeScaling
  if (s?.type === 'linear') for (let i = 0; i < half; i++) inv[i] = inv[i]! / s.factor
  if (s?.type === 'llama3') {
    const lowWavelen = s.originalMaxPositions / s.lowFreqFactor
    const highWavelen = s.originalMaxPositions / s.highFreqFactor
    for (let i = 0; i < half; i++) {
      const wavelen = (2 * Math.PI) / inv[i]!
      if (wavelen > lowWavelen) inv[i] = inv[i]! / s.factor
      else if (wavelen >= highWavelen) {
        const smooth = (s.originalMaxPositions / wavelen - s.lowFreqFactor) / (s.highFreqFactor - s.lowFreqFactor)
        inv[i] = (1 - smooth) * (inv[i]! / s.factor) + smooth * inv[i]!
      }
    }
  }
  if (config.ropeFreqFactors) for (let i = 0; i < half; i++) inv[i] = inv[i]! / config.ropeFreqFactors[i]!
  return inv
}

/** cos and sin of `position · inv[i]`, float32 `[positions, headDim / 2]` each. */
export function ropeTables(config: Pick<DecoderConfig, 'headDim' | 'ropeTheta' | 'ropeScaling' | 'ropeFreqFactors'>, positions: number): {cos: Float32Array; sin: Float32Array} {
  const inv = inverseFrequencies(config)
  const half = inv.length
  const cos = new Float32Array(positions * half)
  const sin = new Float32Array(positions * half)
  for (let p = 0; p < positions; p++)
    for (let i = 0; i < half; i++) {
      const angle = p * inv[i]!
      cos[p * half + i] = Math.cos(angle)
      sin[p * half + i] = Math.sin(angle)
    }
  return {cos, sin}
}
