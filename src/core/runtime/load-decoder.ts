/**
 * One call from paths to a running model variant: open the base (a Hugging
 * Face folder or a GGUF file), read the adapters (PEFT folders, or one
 * adapter of a `lora-pack`), check them against the base, and build the
 * session with the adapters unmerged (default) or merged.
 */
import {stat} from 'node:fs/promises'
import {InputError, UsageError, withFileContext} from '../errors.js'
import {detect} from '../formats/detect.js'
import type {ExecutionProvider} from '../onnx/session.js'
import {AdapterFactors, WeightedAdapter, checkAdapterFits, readPackFactors, readPeftFactors} from './adapter-factors.js'
import {DecoderModel, assertDecoderTensors} from './decoder-model.js'
import {DecoderWeights, openHfWeights} from './decoder-weights.js'
import {openGgufWeights} from './gguf-weights.js'
import {loraDeltas, mergedWeights} from './lora-deltas.js'
import {routedDeltas} from './routed-deltas.js'

/**
 * Open a base model's weights: a GGUF file (by its magic, not its name) or a
 * Hugging Face model folder.
 * @throws InputError for anything else
 */
export async function openDecoderWeights(path: string): Promise<DecoderWeights> {
  const info = await withFileContext('read', path, () => stat(path))
  if (info.isDirectory()) return openHfWeights(path)
  if ((await detect(path).catch(() => undefined)) === 'gguf') return openGgufWeights(path)
  throw new InputError('DECODER_NOT_A_MODEL', `read ${path}: not a GGUF file or a model folder (a Hugging Face model is a folder with config.json and safetensors)`)
}

/** An adapter to apply: a PEFT folder, or adapter `name` of a pack file. */
export type AdapterRef = {readonly path: string; readonly weight?: number} | {readonly pack: string; readonly name: string; readonly weight?: number}

/** A base and adapters by path, and how to run them. */
export interface LoadDecoderOptions {
  /** Base model: a Hugging Face folder or a GGUF file. */
  base: string
  adapters?: readonly AdapterRef[]
  /**
   * Every adapter of a lora-pack, routed per request by a serving strategy
   * (`ForwardInput.adapters` names each row's adapter); not with `adapters`.
   */
  routed?: {readonly pack: string; readonly strategy: string}
  /** Merge the adapters into the weights instead of applying them beside the base product. */
  merge?: boolean
  maxPositions?: number
  ep?: ExecutionProvider
  threads?: number
  externalData?: boolean
}

/** A running variant and what it was built from. */
export interface LoadedDecoder {
  readonly model: DecoderModel
  readonly weights: DecoderWeights
  readonly adapters: readonly AdapterFactors[]
  /** With `routed`: the pack's adapter names, which rows may ask for. */
  readonly routedAdapters: readonly string[]
  /** Release the session and close the files. */
  close(): Promise<void>
}

/**
 * Read adapters and check each against the base's config.
 * @throws UsageError for a non-finite weight; InputError for unreadable adapters or ones that do not fit
 */
export async function readAdapters(refs: readonly AdapterRef[], weights: DecoderWeights): Promise<WeightedAdapter[]> {
  const out: WeightedAdapter[] = []
  for (const ref of refs) {
    const weight = ref.weight ?? 1
    if (!Number.isFinite(weight)) throw new UsageError('BAD_ADAPTER_WEIGHT', `adapter weight must be a finite number (got ${weight})`)
    const adapter = 'pack' in ref ? await readPackFactors(ref.pack, ref.name) : await readPeftFactors(ref.path)
    checkAdapterFits(adapter, weights.config)
    out.push({adapter, weight})
  }
  return out
}

/**
 * Open `base`, read the adapters, and build the model variant.
 * @throws InputError / UsageError as `openDecoderWeights`, `readAdapters` and `DecoderModel.create` do
 */
export async function loadDecoder(options: LoadDecoderOptions): Promise<LoadedDecoder> {
  const weights = await openDecoderWeights(options.base)
  try {
    assertDecoderTensors(weights)
    if (options.routed && (options.adapters?.length ?? 0) > 0) throw new UsageError('RUNTIME_ROUTED_AND_ADAPTERS', 'give adapters either routed from a pack or applied to every request, not both')
    if (options.routed && options.merge) throw new UsageError('RUNTIME_ROUTED_MERGE', 'routed adapters are served unmerged; merging applies to adapters given for every request')
    const adapters = await readAdapters(options.adapters ?? [], weights)
    const unmerged = adapters.length > 0 && !options.merge
    const routed = options.routed ? await routedDeltas(options.routed.pack, options.routed.strategy, weights.config) : undefined
    const model = await DecoderModel.create({
      weights: adapters.length > 0 && options.merge ? mergedWeights(weights, adapters) : weights,
      deltas: routed ?? (unmerged ? loraDeltas(adapters) : undefined),
      maxPositions: options.maxPositions,
      ep: options.ep,
      threads: options.threads,
      externalData: options.externalData,
    })
    return {
      model,
      weights,
      adapters: adapters.map((a) => a.adapter),
      routedAdapters: routed?.adapters ?? [],
      async close() {
        await model.release()
        await weights.close()
      },
    }
  } catch (error) {
    await weights.close()
    throw error
  }
}
