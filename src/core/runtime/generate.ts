/**
 * Token generation on a decoder model: the prompt prefilled once, then one
 * token per step through the KV cache; greedy (temperature 0) or sampled
 * from softmax(logits / T) with a seeded generator, stopping at an end
 * token or after `maxTokens`.
 */
import {UsageError} from '../errors.js'
import {Rng} from '../random.js'
import type {DecoderModel} from './decoder-model.js'

/** One generation: the prompt, the length limit and the sampler. */
export interface GenerateOptions {
  /** Prompt token ids (BOS included when the model wants one). */
  prompt: readonly number[]
  /** New tokens at most. */
  maxTokens: number
  /** 0 (default): greedy. */
  temperature?: number
  /** Seed of the sampler (temperature > 0). */
  seed?: number
  /** Ids that end generation (not included in the output). */
  stopIds?: readonly number[]
  /** Per-request adapter for routed models. */
  adapter?: string | null
  /** Called with each new token as it is chosen. */
  onToken?(id: number): void
}

/** The new ids and why generation stopped. */
export interface GenerateResult {
  /** The new token ids. */
  ids: number[]
  /** Why it stopped. */
  stop: 'eos' | 'length'
  promptTokens: number
}

/** Index of the largest value (the first on ties). */
export function argmax(row: Float32Array): number {
  let best = 0
  for (let i = 1; i < row.length; i++) if (row[i]! > row[best]!) best = i
  return best
}

/** A token drawn from softmax(row / temperature), or the argmax when temperature is 0. */
export function sampleToken(row: Float32Array, temperature: number, rng: Rng): number {
  if (temperature === 0) return argmax(row)
  let max = -Infinity
  for (const v of row) if (v > max) max = v
  const p = new Float64Array(row.length)
  let sum = 0
  for (let i = 0; i < row.length; i++) sum += p[i] = Math.exp((row[i]! - max) / temperature)
  let u = rng.next() * sum
  for (let i = 0; i < p.length; i++) {
    u -= p[i]!
    if (u < 0) return i
  }
  return p.length - 1
}

/**
 * Generate up to `maxTokens` tokens after `prompt`.
 * @throws UsageError for an empty prompt, a negative or non-finite temperature, or a prompt past the model's positions
 */
export async function generateTokens(model: DecoderModel, options: GenerateOptions): Promise<GenerateResult> {
  if (options.prompt.length === 0) throw new UsageError('EMPTY_PROMPT', 'generate: the prompt has no tokens')
  const temperature = options.temperature ?? 0
  if (!(Number.isFinite(temperature) && temperature >= 0)) throw new UsageError('BAD_TEMPERATURE', `generate: temperature must be 0 or more (got ${temperature})`)
  const rng = new Rng(options.seed ?? 0, 'generate')
  const stop = new Set(options.stopIds ?? [])
  const room = model.maxPositions - options.prompt.length
  const limit = Math.max(0, Math.min(options.maxTokens, room))
  const adapters = options.adapter === undefined ? undefined : [options.adapter]
  const ids: number[] = []
  if (limit === 0) return {ids, stop: 'length', promptTokens: options.prompt.length}
  let step = await model.forward({tokens: [options.prompt], adapters})
  for (;;) {
    const next = sampleToken(step.logits[0]!, temperature, rng)
    if (stop.has(next)) return {ids, stop: 'eos', promptTokens: options.prompt.length}
    ids.push(next)
    options.onToken?.(next)
    if (ids.length >= limit) return {ids, stop: 'length', promptTokens: options.prompt.length}
    step = await model.forward({tokens: [[next]], cache: step.cache, adapters})
  }
}

/**
 * Turns a growing list of ids into text pieces as they become final: the
 * decoded text of the prompt and all ids so far, minus what was already
 * emitted (the prompt's text counts as emitted), held back while it ends in
 * an incomplete character (byte-fallback tokens). Decoding with the prompt
 * keeps the space before the first word, which tokenizers strip at the start.
 */
export class TextStream {
  private readonly ids: number[]
  private emitted: number

  constructor(
    private readonly decode: (ids: readonly number[]) => string,
    prompt: readonly number[] = [],
  ) {
    this.ids = [...prompt]
    this.emitted = decode(this.ids).length
  }

  /** Add a token; returns the new text (possibly empty). */
  push(id: number): string {
    this.ids.push(id)
    const text = this.decode(this.ids)
    if (text.endsWith('\uFFFD')) return ''
    const piece = text.slice(this.emitted)
    this.emitted = text.length
    return piece
  }

  /** Whatever is left (an incomplete character at the end comes out as U+FFFD). */
  flush(): string {
    const text = this.decode(this.ids)
    const piece = text.slice(this.emitted)
    this.emitted = text.length
    return piece
  }
}
