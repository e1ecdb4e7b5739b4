/** The dimensions of a real base model (`--base`), checked against any given flags. */
import {InputError, UsageError} from '../errors.js'
import {openModel} from '../formats/sharded-model.js'
import {formatShape} from '../shape.js'

export interface BaseDims {
  hidden: number
  intermediate: number
  layers: number
}

/**
 * Read hidden, intermediate and layer count from the base's tensor shapes
 * (q_proj and gate_proj of layer 0). A given `--hidden`/`--intermediate` must
 * agree; `--layers` may take the first L blocks of a deeper base.
 * @throws InputError when the base lacks the tensors; UsageError when flags disagree.
 */
export async function baseDims(path: string, given: Partial<BaseDims>): Promise<BaseDims> {
  const source = await openModel(path)
  try {
    const q = source.tensors.get('model.layers.0.self_attn.q_proj.weight')
    const gate = source.tensors.get('model.layers.0.mlp.gate_proj.weight')
    if (!q || !gate) throw new InputError('BASE_NOT_LLAMA', `read base ${path}: no model.layers.0.self_attn.q_proj.weight / mlp.gate_proj.weight (expected a Llama-style checkpoint)`)
    if (q.shape.length !== 2 || q.shape[0] !== q.shape[1] || gate.shape.length !== 2 || gate.shape[1] !== q.shape[1]) {
      throw new InputError('BASE_SHAPE_MISMATCH', `read base ${path}: q_proj ${formatShape(q.shape)} and gate_proj ${formatShape(gate.shape)} do not form a Llama block (expected [hidden, hidden] and [intermediate, hidden])`)
    }
    let layers = 0
    while (source.tensors.has(`model.layers.${layers}.self_attn.q_proj.weight`)) layers++
    const dims = {hidden: q.shape[0]!, intermediate: gate.shape[0]!, layers}
    for (const key of ['hidden', 'intermediate'] as const) {
      if (given[key] !== undefined && given[key] !== dims[key]) throw new UsageError('BASE_DIMS_MISMATCH', `--${key} ${given[key]} does not match the base ${path} (${key} ${dims[key]})`)
    }
    if (given.layers !== undefined && given.layers > layers) throw new UsageError('BASE_DIMS_MISMATCH', `--layers ${given.layers} is more than the base ${path} has (${layers})`)
    return {...dims, layers: given.layers ?? layers}
  } finally {
    await source.close()
  }
}
