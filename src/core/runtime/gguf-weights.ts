/**
 * A GGUF model (llama.cpp's names and layout) as `DecoderWeights` under
 * Hugging Face names: F32/F16/BF16 tensors decoded to float32, Q4_0 and Q8_0
 * weights kept as blocks for `MatMulNBits`, llama-family q/k rows moved back
 * from llama.cpp's interleaved RoPE order to transformers' rotate-half order
 * (the inverse of `permuteRowsToGguf`, applied to whole rows, so quantized
 * rows move unchanged).
 */
import {toFloat32} from '../dtype.js'
import {InputError} from '../errors.js'
import {GgufFile, GgufTensorInfo} from '../formats/gguf-reader.js'
import {sanitizeName} from '../formats/safetensors-header.js'
import {GGUF_ARCHITECTURES, GgufArchitecture, hfTensorName, qkRole} from '../models/gguf-names.js'
import {DecoderConfig, decoderConfigFromGguf} from './decoder-config.js'
import type {DecoderWeights} from './decoder-weights.js'
import {LinearWeight, floatLinear, q4_0ToNBits, q8_0ToNBits, reorderRows} from './linear-weight.js'

/** GGML float types and the dtype-table name that decodes them. */
const FLOAT_TYPES: Readonly<Record<string, 'F32' | 'F16' | 'BF16'>> = Object.freeze({F32: 'F32', F16: 'F16', BF16: 'BF16'})

/** The row a transformers-order q/k row `r` comes from in llama.cpp's order (heads of `headDim` rows). */
export function ggufQkSourceRow(r: number, headDim: number): number {
  const half = headDim / 2
  const h = Math.floor(r / headDim)
  const w = r % headDim
  const j = Math.floor(w / half)
  const i = w % half
  return h * headDim + 2 * i + j
}

class GgufWeights implements DecoderWeights {
  readonly format = 'gguf'
  constructor(
    readonly path: string,
    readonly config: DecoderConfig,
    readonly names: ReadonlySet<string>,
    private readonly file: GgufFile,
    private readonly arch: GgufArchitecture,
    /** HF name → GGUF tensor. */
    private readonly byHf: ReadonlyMap<string, GgufTensorInfo>,
  ) {}

  /** The open GGUF (its `tokenizer.ggml.*` metadata builds the tokenizer). */
  get gguf(): GgufFile {
    return this.file
  }

  private info(name: string): GgufTensorInfo {
    const info = this.byHf.get(name)
    if (!info) throw new InputError('DECODER_MISSING_TENSOR', `read ${this.path}: no tensor for "${sanitizeName(name)}"`)
    return info
  }

  /** Rows to move back to transformers' order (q: query heads, k: KV heads), or undefined. */
  private permutation(name: string): ((row: number) => number) | undefined {
    const role = this.arch.permuteQK ? qkRole(name) : undefined
    if (!role) return undefined
    const hd = this.config.headDim
    return (r) => ggufQkSourceRow(r, hd)
  }

  async vector(name: string): Promise<Float32Array> {
    const info = this.info(name)
    if (info.shape.length !== 1) throw new InputError('DECODER_BAD_SHAPE', `read ${this.path}: "${sanitizeName(info.name)}" has shape [${info.shape.join(', ')}] (expected 1-D)`)
    const type = FLOAT_TYPES[info.type.name]
    if (!type) throw new InputError('DECODER_UNSUPPORTED_TYPE', `read ${this.path}: 1-D tensor "${sanitizeName(info.name)}" is ${info.type.name} (expected F32, F16 or BF16)`)
    const values = toFloat32(type, await this.file.readBytes(info.name)).slice()
    const from = this.permutation(name)
    if (!from) return values
    const out = new Float32Array(values.length)
    for (let r = 0; r < values.length; r++) out[r] = values[from(r)]!
    return out
  }

  async linear(name: string): Promise<LinearWeight> {
    const info = this.info(name)
    if (info.shape.length !== 2) throw new InputError('DECODER_BAD_SHAPE', `read ${this.path}: "${sanitizeName(info.name)}" has shape [${info.shape.join(', ')}] (expected 2-D)`)
    const [out, inDim] = info.shape as [number, number]
    const bytes = await this.file.readBytes(info.name)
    let w: LinearWeight
    const type = info.type.name
    if (type === 'Q4_0') w = q4_0ToNBits(bytes, out, inDim)
    else if (type === 'Q8_0') w = q8_0ToNBits(bytes, out, inDim)
    else if (FLOAT_TYPES[type]) w = floatLinear(toFloat32(FLOAT_TYPES[type]!, bytes).slice(), out, inDim)
    else throw new InputError('DECODER_UNSUPPORTED_TYPE', `read ${this.path}: tensor "${sanitizeName(info.name)}" is ${type}, which the runtime does not run (F32, F16, BF16, Q8_0, Q4_0)`)
    const from = this.permutation(name)
    return from ? reorderRows(w, from) : w
  }

  close(): Promise<void> {
    return this.file.close()
  }
}

/**
 * Open a GGUF model file for the runtime.
 * @throws InputError for an architecture without a name map, a missing hyperparameter, or an unsupported tensor type
 */
export async function openGgufWeights(path: string): Promise<DecoderWeights & {readonly gguf: GgufFile}> {
  const file = await GgufFile.open(path)
  try {
    const archName = file.value('general.architecture')
    const arch = typeof archName === 'string' ? GGUF_ARCHITECTURES[archName] : undefined
    if (!arch || arch.gguf === 'gpt2') {
      throw new InputError('DECODER_UNSUPPORTED_ARCH', `read ${path}: general.architecture "${sanitizeName(String(archName))}" is not a Llama-family decoder this runtime builds (llama, qwen2)`)
    }
    const byHf = new Map<string, GgufTensorInfo>()
    for (const info of file.tensors.values()) {
      const hf = hfTensorName(arch, info.name)
      if (hf !== undefined) byHf.set(hf, info)
    }
    let freqFactors: Float32Array | null = null
    const rf = file.tensors.get('rope_freqs.weight')
    if (rf) {
      const type = FLOAT_TYPES[rf.type.name]
      if (!type) throw new InputError('DECODER_UNSUPPORTED_TYPE', `read ${path}: rope_freqs.weight is ${rf.type.name} (expected F32)`)
      freqFactors = toFloat32(type, await file.readBytes(rf.name)).slice()
    }
    const config = decoderConfigFromGguf(file, freqFactors)
    if (freqFactors && freqFactors.length !== config.headDim / 2) {
      throw new InputError('DECODER_BAD_SHAPE', `read ${path}: rope_freqs.weight has ${freqFactors.length} values (expected head size / 2 = ${config.headDim / 2})`)
    }
    return new GgufWeights(path, config, new Set(byHf.keys()), file, arch, byHf)
  } catch (error) {
    await file.close()
    throw error
  }
}

