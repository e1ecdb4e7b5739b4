/**
 * Which base tensor each adapter module changes, and in which orientation.
 *
 * A LoRA module with A [r, in] and B [out, r] adds `s · B · A` ([out, in]) to
 * a base weight stored [out, in] (nn.Linear), or its transpose to one stored
 * [in, out] (GPT-2's Conv1D; PEFT embeddings). The orientation is read from
 * the base tensor's shape, because real adapters carry a wrong
 * `fan_in_fan_out` flag. A square weight fits both ways: it follows the other
 * (non-square) weights of the merge when they agree, else the adapter's flag;
 * an embedding module is always transposed (PEFT's `Embedding.get_delta_weight`).
 */
import {InputError} from '../errors.js'
import type {LoraAdapter, LoraModule} from '../formats/peft-adapter.js'
import {sanitizeName} from '../formats/safetensors-header.js'
import {formatShape} from '../shape.js'
import type {ModelReader} from '../model-io/model-reader.js'
import {DTYPES} from '../dtype.js'

export interface MergeTerm {
  /** Index into the adapters list. */
  readonly adapter: number
  readonly module: LoraModule
  /** `w_k · s_k`: the user's weight times the module's scaling. */
  readonly scale: number
  /** The delta is added transposed ((B·A)ᵀ) because the base stores [in, out]. */
  readonly transposed: boolean
}

export interface MergeTarget {
  /** Base tensor name (`….c_attn.weight`). */
  readonly name: string
  /**
   * The base stores this tensor's rows permuted within this many heads (q/k of a
   * llama.cpp GGUF base): the delta's rows are permuted the same way.
   */
  readonly permuteHeads?: number
  /** Stored shape [rows, cols]. */
  readonly shape: readonly [number, number]
  readonly terms: readonly MergeTerm[]
  /** Orientation of the layer: true when rows are the input features. */
  readonly transposed: boolean
}

export interface MergePlan {
  /** Targets in base order. */
  readonly targets: ReadonlyMap<string, MergeTarget>
  readonly warnings: readonly string[]
}

type Fit = 'normal' | 'transposed' | 'both'

/** Where an adapter module lands in a base whose tensor names are not Hugging Face's (a llama.cpp GGUF). */
export interface BaseTensorResolver {
  /** The base tensor a PEFT module changes, and its q/k row permutation, or undefined when the base has none. */
  resolve(module: string): {tensor: string; permuteHeads?: number} | undefined
  /** The base stores every linear weight [out, in] (GGUF), so square weights need no guess. */
  readonly outIn: boolean
}

/**
 * Match every module of every adapter to its base tensor.
 * @param weights per-adapter weights w_k
 * @throws InputError when a module finds no base tensor (naming both), the base tensor is not a 2-D float,
 *   or neither orientation of the delta fits its shape
 */
export function planMerge(base: ModelReader, adapters: readonly LoraAdapter[], weights: readonly number[], resolver?: BaseTensorResolver): MergePlan {
  const pending: Array<{adapter: number; module: LoraModule; tensor: string; fit: Fit}> = []
  const permutations = new Map<string, number>()
  for (const [k, adapter] of adapters.entries()) {
    for (const module of adapter.modules.values()) {
      const resolved = resolver?.resolve(module.name)
      const tensor = resolved?.tensor ?? `${module.name}.weight`
      if (resolved?.permuteHeads) permutations.set(tensor, resolved.permuteHeads)
      const t = base.tensors.get(tensor)
      const where = `merge ${adapter.dir}: module "${sanitizeName(module.name)}"`
      if (!t) {
        const near = nearestTensor(base, module.name)
        throw new InputError(
          'MERGE_NO_BASE_TENSOR',
          `${where}: the base ${base.path} has no tensor "${sanitizeName(tensor)}"${near ? ` (it has "${sanitizeName(near)}": is this adapter for another model or prefix?)` : ''}`,
        )
      }
      const delta = [module.out, module.in]
      if (t.shape.length !== 2 || DTYPES[t.dtype].kind !== 'float') {
        throw new InputError('MERGE_SHAPE_MISMATCH', `${where}: base tensor "${sanitizeName(tensor)}" is ${t.dtype} ${formatShape(t.shape)}, not a 2-D float weight for a delta of ${formatShape(delta)}`)
      }
      const [r0, c0] = t.shape as [number, number]
      const normal = r0 === module.out && c0 === module.in
      const transposed = r0 === module.in && c0 === module.out
      if (!normal && !transposed) {
        throw new InputError(
          'MERGE_SHAPE_MISMATCH',
          `${where}: delta B·A is ${formatShape(delta)} but base tensor "${sanitizeName(tensor)}" is ${formatShape(t.shape)} (neither ${formatShape(delta)} nor ${formatShape([module.in, module.out])})`,
        )
      }
      if (resolver?.outIn && module.kind === 'linear' && !normal) {
        throw new InputError('MERGE_SHAPE_MISMATCH', `${where}: delta B·A is ${formatShape(delta)} but base tensor "${sanitizeName(tensor)}" is ${formatShape(t.shape)} (GGUF weights are [out, in])`)
      }
      const fit: Fit = resolver?.outIn ? 'normal' : normal && transposed ? 'both' : normal ? 'normal' : 'transposed'
      pending.push({adapter: k, module, tensor, fit})
    }
  }
  const decided = pending.filter((p) => p.fit !== 'both' && p.module.kind === 'linear')
  const consensus = decided.length === 0 ? undefined : decided.every((p) => p.fit === 'transposed') ? true : decided.every((p) => p.fit === 'normal') ? false : undefined
  const disagreements = new Map<number, {count: number; total: number}>()
  const byTensor = new Map<string, MergeTerm[]>()
  for (const p of pending) {
    const adapter = adapters[p.adapter]!
    const transposed = p.module.kind === 'embedding' ? true : p.fit === 'both' ? (consensus ?? adapter.config.fanInFanOut) : p.fit === 'transposed'
    if (p.module.kind === 'linear') {
      const d = disagreements.get(p.adapter) ?? {count: 0, total: 0}
      d.total++
      if (transposed !== adapter.config.fanInFanOut) d.count++
      disagreements.set(p.adapter, d)
    }
    const terms = byTensor.get(p.tensor) ?? []
    terms.push({adapter: p.adapter, module: p.module, scale: weights[p.adapter]! * p.module.scaling, transposed})
    byTensor.set(p.tensor, terms)
  }
  const warnings: string[] = []
  for (const [k, d] of disagreements) {
    if (d.count === 0) continue
    const flag = adapters[k]!.config.fanInFanOut
    warnings.push(
      `adapter ${adapters[k]!.name}: fan_in_fan_out is ${flag}, but the base stores ${d.count} of its ${d.total} target weights ${flag ? 'as [out, in]' : 'as [in, out] (like GPT-2\'s Conv1D)'}; merged by the base's layout`,
    )
  }
  const targets = new Map<string, MergeTarget>()
  for (const name of base.tensors.keys()) {
    const terms = byTensor.get(name)
    if (!terms) continue
    const shape = base.tensors.get(name)!.shape as [number, number]
    const transposedCount = terms.filter((t) => t.transposed).length
    targets.set(name, {name, shape, terms, transposed: transposedCount * 2 > terms.length, ...(permutations.has(name) ? {permuteHeads: permutations.get(name)} : {})})
  }
  return {targets, warnings}
}

/** A base tensor whose name ends like the module's (longest matching suffix of dotted segments), for the error hint. */
function nearestTensor(base: ModelReader, module: string): string | undefined {
  const segments = module.split('.')
  const names = [...base.tensors.keys()]
  for (let drop = 1; drop < segments.length; drop++) {
    const suffix = `.${segments.slice(drop).join('.')}.weight`
    const hit = names.find((n) => n.endsWith(suffix) || n === suffix.slice(1))
    if (hit) return hit
  }
  return undefined
}
