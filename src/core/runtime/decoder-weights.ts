/**
 * Where a decoder's weights come from, behind one interface keyed by Hugging
 * Face tensor names (`model.layers.0.self_attn.q_proj.weight`): a Hugging Face
 * folder (F32/F16/BF16 safetensors, sharded or not, and `lora`'s nf4/int4
 * layouts, decoded to float32) or a GGUF file (`gguf-weights.ts`). Variants
 * (merged adapters, re-quantized weights) wrap a source and replace tensors.
 */
import {readRegularText} from '../io/regular-file.js'
import {join} from 'node:path'
import {InputError} from '../errors.js'
import {sanitizeName} from '../formats/safetensors-header.js'
import {ModelReader} from '../model-io/model-reader.js'
import {DecoderConfig, decoderConfigFromHf} from './decoder-config.js'
import {LinearWeight, floatLinear} from './linear-weight.js'

/** A decoder's weights by Hugging Face name, read one tensor at a time. */
export interface DecoderWeights {
  /** The model path as given. */
  readonly path: string
  readonly format: 'safetensors' | 'gguf'
  readonly config: DecoderConfig
  /** Every tensor, by Hugging Face name. */
  readonly names: ReadonlySet<string>
  /** A 1-D tensor (a norm weight, a bias) as float32. */
  vector(name: string): Promise<Float32Array>
  /** A 2-D weight `[out, in]` (linear layers and the embedding table `[vocab, hidden]`). */
  linear(name: string): Promise<LinearWeight>
  close(): Promise<void>
}

/** A config.json larger than this is not a config. */
export const MAX_CONFIG_JSON_BYTES = 4 * 1024 * 1024

/** Read and parse a folder's config.json. */
export async function readConfigJson(dir: string): Promise<unknown> {
  const path = join(dir, 'config.json')
  const text = await readRegularText(path, MAX_CONFIG_JSON_BYTES, () => new InputError('DECODER_BAD_CONFIG', `read ${path}: too large for a config.json`))
  try {
    return JSON.parse(text)
  } catch (error) {
    throw new InputError('DECODER_BAD_CONFIG', `read ${path}: not valid JSON (${(error as Error).message})`)
  }
}

/** A Hugging Face model folder through `ModelReader` (plain or 4-bit safetensors, decoded to float32). */
class HfWeights implements DecoderWeights {
  readonly format = 'safetensors'
  constructor(
    readonly path: string,
    readonly config: DecoderConfig,
    readonly names: ReadonlySet<string>,
    private readonly reader: ModelReader,
  ) {}

  private shape(name: string): readonly number[] {
    const t = this.reader.tensors.get(name)
    if (!t) throw new InputError('DECODER_MISSING_TENSOR', `read ${this.path}: no tensor "${sanitizeName(name)}"`)
    return t.shape
  }

  async vector(name: string): Promise<Float32Array> {
    const shape = this.shape(name)
    if (shape.length !== 1) throw new InputError('DECODER_BAD_SHAPE', `read ${this.path}: "${sanitizeName(name)}" has shape [${shape.join(', ')}] (expected 1-D)`)
    return this.reader.readRows(name, 0, 1)
  }

  async linear(name: string): Promise<LinearWeight> {
    const shape = this.shape(name)
    if (shape.length !== 2) throw new InputError('DECODER_BAD_SHAPE', `read ${this.path}: "${sanitizeName(name)}" has shape [${shape.join(', ')}] (expected 2-D)`)
    const [out, inDim] = shape as [number, number]
    return floatLinear(await this.reader.readRows(name, 0, out), out, inDim)
  }

  close(): Promise<void> {
    return this.reader.close()
  }
}

/**
 * Open a Hugging Face model folder: `config.json` and the weights.
 * @throws InputError for a folder without config.json or weights, or a config this runtime cannot build
 */
export async function openHfWeights(dir: string): Promise<DecoderWeights> {
  const json = await readConfigJson(dir)
  const reader = await ModelReader.open(dir)
  try {
    const names = new Set(reader.tensors.keys())
    const config = decoderConfigFromHf(json, names, `read ${join(dir, 'config.json')}`)
    return new HfWeights(dir, config, names, reader)
  } catch (error) {
    await reader.close()
    throw error
  }
}

/** A source with some tensors replaced (dequantized, merged or re-quantized variants). */
export function withReplacedWeights(base: DecoderWeights, replaced: ReadonlyMap<string, LinearWeight | Float32Array>, options: {closeBase?: boolean} = {}): DecoderWeights {
  return {
    path: base.path,
    format: base.format,
    config: base.config,
    names: base.names,
    async vector(name) {
      const r = replaced.get(name)
      return r instanceof Float32Array ? r : base.vector(name)
    },
    async linear(name) {
      const r = replaced.get(name)
      return r && !(r instanceof Float32Array) ? r : base.linear(name)
    },
    close: () => (options.closeBase === false ? Promise.resolve() : base.close()),
  }
}

/** How a variant changes a source's tensors: each map gets the source's tensor and returns the variant's (absent: unchanged). */
export interface WeightMaps {
  /** 2-D weights (projections, embedding, head). */
  linear?(name: string, weight: LinearWeight): LinearWeight | Promise<LinearWeight>
  /** 1-D tensors (norm weights, biases). */
  vector?(name: string, values: Float32Array): Float32Array | Promise<Float32Array>
}

/**
 * `weights` with its tensors passed through `maps` as they are read (the
 * variants: merged adapters, re-quantized or rounded weights); path,
 * format, config, names and `close` are the source's.
 */
export function mapWeights(weights: DecoderWeights, maps: WeightMaps): DecoderWeights {
  const {linear, vector} = maps
  return {
    path: weights.path,
    format: weights.format,
    config: weights.config,
    names: weights.names,
    vector: vector ? async (name) => vector(name, await weights.vector(name)) : (name) => weights.vector(name),
    linear: linear ? async (name) => linear(name, await weights.linear(name)) : (name) => weights.linear(name),
    close: () => weights.close(),
  }
}

/**
 * `weights` with every 2-D weight (projections, embedding, head) passed
 * through `map`, e.g. to quantize the projections of a variant
 * (`q4_0ToNBits(quantizeQ4_0(values), out, in)`) or round them to f16.
 */
export function mapLinearWeights(weights: DecoderWeights, map: (name: string, weight: LinearWeight) => LinearWeight | Promise<LinearWeight>): DecoderWeights {
  return mapWeights(weights, {linear: map})
}
