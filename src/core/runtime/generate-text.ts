/**
 * `lora generate`'s core: load a base (and adapters), tokenize the prompt
 * with the model's own tokenizer, generate, and stream the text as it
 * becomes final.
 */
import type {ExecutionProvider} from '../onnx/session.js'
import {GenerateResult, TextStream, generateTokens} from './generate.js'
import {AdapterRef, loadDecoder} from './load-decoder.js'
import {loadTokenizer} from './tokenizer.js'

/** What `generateText` loads and how it samples. */
export interface GenerateTextOptions {
  base: string
  adapters?: readonly AdapterRef[]
  merge?: boolean
  /** Serve adapter `adapter` of `pack` through a routed strategy (the whole pack stacked), instead of `adapters`. */
  routed?: {pack: string; strategy: string; adapter: string}
  prompt: string
  maxTokens: number
  temperature?: number
  seed?: number
  ep?: ExecutionProvider
  threads?: number
  /** Called with each piece of new text as it becomes final. */
  onText?(piece: string): void
}

/** `lora generate --json`: the prompt's ids, the new ids and their text. */
export interface GenerateTextResult {
  base: string
  adapters: string[]
  /** The routed strategy that served the adapter, or null (applied to the one request unmerged, or merged). */
  strategy: string | null
  merged: boolean
  prompt: string
  prompt_ids: number[]
  ids: number[]
  /** The generated text alone (without the prompt). */
  text: string
  stop: GenerateResult['stop']
  temperature: number
  seed: number
}

/**
 * Generate text after `prompt`.
 * @throws InputError / UsageError for unreadable models, adapters or tokenizers, and bad settings
 */
export async function generateText(options: GenerateTextOptions): Promise<GenerateTextResult> {
  const routed = options.routed ? {pack: options.routed.pack, strategy: options.routed.strategy} : undefined
  const loaded = await loadDecoder({base: options.base, adapters: options.adapters, merge: options.merge, routed, ep: options.ep, threads: options.threads})
  try {
    const tokenizer = await loadTokenizer(options.base)
    const promptIds = tokenizer.encode(options.prompt)
    const stream = new TextStream((ids) => tokenizer.decode(ids), promptIds)
    let text = ''
    const stopIds = [...new Set([...tokenizer.eosIds, ...loaded.weights.config.eosTokenIds])]
    const result = await generateTokens(loaded.model, {
      prompt: promptIds,
      maxTokens: options.maxTokens,
      temperature: options.temperature,
      seed: options.seed,
      stopIds,
      adapter: options.routed?.adapter,
      onToken: (id) => {
        const piece = stream.push(id)
        text += piece
        if (piece) options.onText?.(piece)
      },
    })
    const rest = stream.flush()
    text += rest
    if (rest) options.onText?.(rest)
    return {
      base: options.base,
      adapters: options.routed ? [options.routed.adapter] : loaded.adapters.map((a) => a.name),
      strategy: options.routed?.strategy ?? null,
      merged: Boolean(options.merge) && loaded.adapters.length > 0,
      prompt: options.prompt,
      prompt_ids: promptIds,
      ids: result.ids,
      text,
      stop: result.stop,
      temperature: options.temperature ?? 0,
      seed: options.seed ?? 0,
    }
  } finally {
    await loaded.close()
  }
}
