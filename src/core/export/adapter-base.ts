/**
 * The base model an adapter is exported for, as llama.cpp names and lays
 * out its tensors: a Hugging Face folder (config.json beside the weights)
 * or a llama.cpp GGUF. For each PEFT module: the llama.cpp tensor, its
 * [out, in] shape there, and the heads its rows are permuted by (q/k of
 * llama-family models).
 */
import {InputError} from '../errors.js'
import {sanitizeName} from '../formats/safetensors-header.js'
import {ggufTensorName, qkRole} from '../models/gguf-names.js'
import {ModelReader} from '../model-io/model-reader.js'
import {formatShape} from '../shape.js'
import {ggufBaseResolver} from '../merge/gguf-base.js'
import {describeSource, ggufOrientedShape} from '../model-io/gguf-model-plan.js'

export interface AdapterTarget {
  /** llama.cpp's name of the base tensor (`blk.3.attn_q.weight`). */
  readonly tensor: string
  /** Its row-major shape in the GGUF ([out, in]; [vocab, dim] for token_embd). */
  readonly shape: readonly [number, number]
  readonly permuteHeads?: number
}

export interface AdapterBase {
  readonly path: string
  /** `general.architecture` of the base. */
  readonly architecture: string
  /** Where a PEFT module lands. */
  target(module: string, adapterDir: string): AdapterTarget
  close(): Promise<void>
}

/**
 * Open the base for an export.
 * @throws InputError for a base lora cannot map (no config.json, an unsupported architecture, an adapter GGUF)
 */
export async function openAdapterBase(path: string): Promise<AdapterBase> {
  const reader = await ModelReader.open(path)
  try {
    const missing = (module: string, dir: string, tensor: string): never => {
      throw new InputError('EXPORT_NO_BASE_TENSOR', `export ${dir}: module "${sanitizeName(module)}" targets "${sanitizeName(tensor)}", which the base ${path} does not have`)
    }
    const twoD = (shape: readonly number[], tensor: string): readonly [number, number] => {
      if (shape.length !== 2) throw new InputError('EXPORT_SHAPE_MISMATCH', `export: base tensor "${sanitizeName(tensor)}" is ${formatShape(shape)}, not a 2-D weight`)
      return [shape[0]!, shape[1]!]
    }
    if (reader.format === 'gguf') {
      const g = reader.ggufFile!
      if (g.value('general.type') === 'adapter') throw new InputError('GGUF_IS_ADAPTER', `read ${path}: a GGUF LoRA adapter, not a base model`)
      const resolver = ggufBaseResolver(g)
      return {
        path,
        architecture: g.value('general.architecture') as string,
        target(module, dir) {
          const r = resolver.resolve(module)!
          const t = reader.tensors.get(r.tensor) ?? missing(module, dir, r.tensor)
          return {tensor: r.tensor, shape: twoD(t.shape, r.tensor), ...(r.permuteHeads ? {permuteHeads: r.permuteHeads} : {})}
        },
        close: () => reader.close(),
      }
    }
    const spec = await describeSource(reader)
    const arch = spec.architecture
    return {
      path,
      architecture: arch.gguf,
      target(module, dir) {
        const hf = `${module}.weight`
        const t = reader.tensors.get(hf)
        if (!t && /(^|\.)lm_head$/.test(module)) {
          throw new InputError('EXPORT_TIED_HEAD', `export ${dir}: module "${sanitizeName(module)}" adapts a head the base ties to its embeddings, which a llama.cpp adapter cannot change separately`)
        }
        if (!t) return missing(module, dir, hf)
        const tensor = ggufTensorName(arch, hf) ?? missing(module, dir, hf)
        const role = arch.permuteQK ? qkRole(hf) : undefined
        const permuteHeads = role === 'q' ? spec.heads : role === 'k' ? spec.kvHeads : undefined
        return {tensor, shape: twoD(ggufOrientedShape(spec, t), hf), ...(permuteHeads ? {permuteHeads} : {})}
      },
      close: () => reader.close(),
    }
  } catch (error) {
    await reader.close()
    throw error
  }
}
