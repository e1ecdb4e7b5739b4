/**
 * A PEFT LoRA adapter as a GGUF LoRA adapter llama.cpp loads
 * (`llama-server --lora`, `llama-cli --lora`, node-llama-cpp's `lora` option).
 *
 * Metadata: `general.architecture` (the base's), `general.type = adapter`,
 * `adapter.type = lora`, `adapter.lora.alpha = 0`, `general.file_type`.
 * llama.cpp scales an adapter by `alpha / rank` (one alpha for the file) or,
 * with alpha 0, by 1; PEFT scales each module by its own `alpha / r`
 * (`alpha / √r` with rsLoRA, per-module `rank_pattern` / `alpha_pattern`).
 * So each module's scaling is folded into its B and alpha is 0: what llama.cpp
 * computes is what PEFT computes, module by module.
 *
 * Tensors, for a base tensor `<name>` ([out, in] in the GGUF):
 *   linear:     <name>.lora_a = A [r, in] (ne [in, r]),  <name>.lora_b = s·B [out, r] (ne [r, out]), rows of
 *               q/k permuted to llama.cpp's RoPE order like the base's
 *   embedding:  token_embd.weight.lora_a = Aᵀ [vocab, r] (ne [r, vocab]), .lora_b = s·B [dim, r]
 *               (llama.cpp gathers rows of lora_a by token, see `llm_build_inp_embd`)
 * Types: `--dtype f32|f16|bf16|q8_0`; a tensor whose rows are not a multiple of
 * 32 cannot be Q8_0 and is written F16 (as llama.cpp's converter falls back), and reported.
 */
import type {DType} from '../dtype.js'
import {fromFloat} from '../dtype.js'
import {InputError} from '../errors.js'
import type {GgmlTypeName} from '../formats/gguf-types.js'
import {GgufWriter} from '../formats/gguf-writer.js'
import type {LoraAdapter} from '../formats/peft-adapter.js'
import {sanitizeName} from '../formats/safetensors-header.js'
import {transposeTyped} from '../linalg/dense.js'
import {permuteRowsToGguf} from '../models/gguf-names.js'
import {formatShape} from '../shape.js'
import {q8_0RowProblem, quantizeQ8_0} from '../quant/q8-0.js'
import type {AdapterBase} from './adapter-base.js'
import {f32, str, u32} from '../gguf/kv.js'
import {GGML_QUANTIZATION_VERSION, GGUF_FILE_TYPES} from '../gguf/file-types.js'

/** The tensor types a GGUF adapter is written in. */
export const ADAPTER_GGUF_TYPES = Object.freeze(['F32', 'F16', 'BF16', 'Q8_0'] as const)
export type AdapterGgufType = (typeof ADAPTER_GGUF_TYPES)[number]

export interface AdapterTensorWritten {
  readonly name: string
  readonly shape: readonly number[]
  readonly type: GgmlTypeName
}

export interface WrittenAdapter {
  /** The adapter's name (its folder). */
  readonly name: string
  readonly out: string
  readonly architecture: string
  readonly modules: number
  readonly type: AdapterGgufType
  readonly tensors: AdapterTensorWritten[]
  /** Tensors written F16 because Q8_0 cannot hold their rows, with the reason. */
  readonly fallbacks: Array<{name: string; reason: string}>
  readonly bytes: number
}

interface Prepared {
  readonly name: string
  /** Row-major shape as written. */
  readonly shape: [number, number]
  readonly values: Float64Array
  readonly type: GgmlTypeName
}

function encode(values: Float64Array, type: GgmlTypeName): Uint8Array {
  if (type === 'Q8_0') return quantizeQ8_0(Float32Array.from(values))
  return fromFloat(type as DType, values)
}


/**
 * Write `adapter` for `base` as a GGUF LoRA adapter at `out`.
 * @throws InputError for modules the base lacks or whose shapes disagree with it, for full tensors (modules_to_save)
 *   an adapter file cannot carry, and for values Q8_0 cannot encode; UsageError when `out` exists without `force`
 */
export async function writeGgufAdapter(adapter: LoraAdapter, base: AdapterBase, out: string, options: {type: AdapterGgufType; force?: boolean}): Promise<WrittenAdapter> {
  const where = `export ${adapter.dir}`
  if (adapter.extraTensors.length > 0) {
    throw new InputError(
      'EXPORT_FULL_TENSORS',
      `${where}: ${adapter.extraTensors.length} full tensors (modules_to_save or heads, e.g. "${sanitizeName(adapter.extraTensors[0]!.name)}") are not LoRA pairs, and a llama.cpp adapter cannot carry them`,
    )
  }
  const prepared: Prepared[] = []
  const fallbacks: Array<{name: string; reason: string}> = []
  const typeFor = (name: string, cols: number): GgmlTypeName => {
    if (options.type !== 'Q8_0') return options.type
    const problem = q8_0RowProblem(cols)
    if (!problem) return 'Q8_0'
    fallbacks.push({name, reason: problem})
    return 'F16'
  }
  for (const m of adapter.modules.values()) {
    const target = base.target(m.name, adapter.dir)
    const a = (await adapter.readA(m.name)).toFloat64() // [r, in]
    const b = (await adapter.readB(m.name)).toFloat64() // [out, r]
    let bScaled = b.map((v) => v * m.scaling)
    const [rows, cols] = target.shape
    if (m.kind === 'embedding') {
      // PEFT: A [r, num_embeddings], B [dim, r]; the base embedding is [num_embeddings, dim]
      if (rows !== m.in || cols !== m.out) {
        throw new InputError('EXPORT_SHAPE_MISMATCH', `${where}: embedding module "${sanitizeName(m.name)}" is ${m.in} × ${m.out} but base tensor "${target.tensor}" is ${formatShape(target.shape)}`)
      }
      prepared.push({name: `${target.tensor}.lora_a`, shape: [m.in, m.r], values: transposeTyped(a, m.r, m.in), type: typeFor(`${target.tensor}.lora_a`, m.r)})
      prepared.push({name: `${target.tensor}.lora_b`, shape: [m.out, m.r], values: bScaled, type: typeFor(`${target.tensor}.lora_b`, m.r)})
      continue
    }
    if (rows !== m.out || cols !== m.in) {
      throw new InputError('EXPORT_SHAPE_MISMATCH', `${where}: module "${sanitizeName(m.name)}" has B·A ${formatShape([m.out, m.in])} but base tensor "${target.tensor}" is ${formatShape(target.shape)} ([out, in])`)
    }
    if (target.permuteHeads) bScaled = permuteRowsToGguf(bScaled, target.permuteHeads, m.r)
    prepared.push({name: `${target.tensor}.lora_a`, shape: [m.r, m.in], values: a, type: typeFor(`${target.tensor}.lora_a`, m.in)})
    prepared.push({name: `${target.tensor}.lora_b`, shape: [m.out, m.r], values: bScaled, type: typeFor(`${target.tensor}.lora_b`, m.r)})
  }
  const kv = [
    str('general.architecture', base.architecture),
    str('general.type', 'adapter'),
    str('general.name', adapter.name),
    u32('general.file_type', GGUF_FILE_TYPES[options.type]!),
    u32('general.quantization_version', GGML_QUANTIZATION_VERSION),
    str('adapter.type', 'lora'),
    // 0: llama.cpp applies each module at scale 1; PEFT's per-module scaling is folded into lora_b
    f32('adapter.lora.alpha', 0),
  ]
  const writer = await GgufWriter.create(out, kv, prepared.map((p) => ({name: p.name, shape: p.shape, type: p.type})), {force: options.force})
  try {
    for (const p of prepared) {
      try {
        await writer.writeTensor(p.name, encode(p.values, p.type))
      } catch (error) {
        if (error instanceof InputError) throw new InputError(error.code, `${where}: tensor "${p.name}": ${error.message}`, {cause: error})
        throw error
      }
    }
    await writer.commit()
  } catch (error) {
    await writer.abort()
    throw error
  }
  return {
    name: adapter.name,
    out,
    architecture: base.architecture,
    modules: adapter.modules.size,
    type: options.type,
    tensors: prepared.map((p) => ({name: p.name, shape: p.shape, type: p.type})),
    fallbacks,
    bytes: writer.plan.fileSize,
  }
}
