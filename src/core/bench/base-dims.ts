/** The dimensions of a real base model (`--base`), checked against any given flags. */
import {InputError, UsageError} from '../errors.js'
import {detect, fileFormat} from '../formats/detect.js'
import {openModel} from '../formats/sharded-model.js'
import {formatShape} from '../shape.js'
import {blockArchitecture, blockShapes, type Role} from '../serve/block-architectures.js'
import type {BlockShapes} from '../serve/lora-layout.js'
import type {PackShape} from '../serve/weights/pack-stacks.js'

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
  const kind = await detect(path)
  if (kind !== 'model' && kind !== 'safetensors') throw new InputError('BASE_NOT_LLAMA', `read base ${path}: ${fileFormat(kind).label}, not a model checkpoint (expected a Llama-style safetensors checkpoint)`)
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

export interface ModelShapeRequest {
  hidden?: number
  intermediate?: number
  layers?: number
  targets?: Role[]
  adapters?: number[]
  basePath?: string
  packPath?: string
}

export interface ModelShape extends BaseDims {
  targets: Role[]
  adapters: number[]
  /** The pack's block when it is not the square Llama block (GQA, non-square q/o, GPT-2, OPT). */
  block?: BlockShapes
}

/** Defaults when neither flags nor files say otherwise. */
export const DEFAULT_SHAPE: ModelShape = {hidden: 512, intermediate: 1376, layers: 4, targets: ['q_proj', 'k_proj', 'v_proj', 'o_proj'], adapters: [100]}

/**
 * The model and adapter counts of a run: flags, else the base's dims
 * (`--base`), else what the pack implies (`--pack`: its adapter count, its
 * projections as targets, the dims of its modules), else the defaults. A flag
 * that contradicts a file is refused.
 * @throws UsageError on a contradiction; InputError for unreadable files.
 */
export async function resolveModelShape(r: ModelShapeRequest): Promise<ModelShape> {
  const fromBase = r.basePath ? await baseDims(r.basePath, r) : undefined
  const pack = r.packPath ? await (await import('../serve/weights/pack-stacks.js')).readPackShape(r.packPath) : undefined
  const hidden = fromBase?.hidden ?? r.hidden ?? pack?.hidden ?? DEFAULT_SHAPE.hidden
  const intermediate = fromBase?.intermediate ?? r.intermediate ?? pack?.intermediate ?? DEFAULT_SHAPE.intermediate
  const layers = fromBase?.layers ?? r.layers ?? pack?.layers ?? DEFAULT_SHAPE.layers
  if (pack) {
    for (const [name, mine, theirs] of [['hidden', hidden, pack.hidden], ['intermediate', intermediate, pack.intermediate]] as const) {
      if (theirs !== undefined && mine !== theirs) throw new UsageError('PACK_DIMS_MISMATCH', `the pack ${r.packPath} has ${name} ${theirs} but the model has ${mine}${r.basePath ? ` (base ${r.basePath})` : ''}`)
    }
    if (r.adapters && (r.adapters.length !== 1 || r.adapters[0] !== pack.adapters)) throw new UsageError('PACK_ADAPTERS_MISMATCH', `--adapters ${r.adapters.join(',')} does not match the pack ${r.packPath} (it holds ${pack.adapters} adapters)`)
    if (layers > pack.layers) throw new UsageError('PACK_DIMS_MISMATCH', `the pack ${r.packPath} adapts ${pack.layers} layers but the model has ${layers}`)
  }
  const targets = r.targets ?? pack?.targets ?? DEFAULT_SHAPE.targets
  const block = pack ? packBlock(pack, hidden, intermediate, r) : undefined
  if (!block && targets.includes('qkv_proj')) throw new UsageError('BAD_FLAG', '--targets: qkv_proj is the fused projection of a --pack that has one (GPT-2\'s c_attn)')
  return {hidden, intermediate, layers, targets, adapters: pack ? [pack.adapters] : (r.adapters ?? DEFAULT_SHAPE.adapters), ...(block ? {block} : {})}
}

/**
 * The block a pack's modules imply, with the widths it does not show taken
 * from the model (an MLP the pack does not adapt gets `intermediate`): undefined
 * for the square Llama block, which needs no shapes of its own.
 * @throws UsageError BASE_NOT_LLAMA when --base is given for a block of another family
 */
function packBlock(pack: PackShape, hidden: number, intermediate: number, r: ModelShapeRequest): BlockShapes | undefined {
  const attention = pack.attention ?? hidden
  const kv = pack.kv ?? attention
  if (pack.architecture === 'llama' && attention === hidden && kv === hidden) return undefined
  if (r.basePath && pack.architecture !== 'llama') {
    throw new UsageError('BASE_NOT_LLAMA', `--base ${r.basePath}: the pack ${r.packPath} is a ${pack.architecture} block, and a real base is read with Llama names; drop --base (a synthetic base of the pack's shapes is made)`)
  }
  return {architecture: pack.architecture, shapes: blockShapes(blockArchitecture(pack.architecture), {hidden, intermediate, attention, kv})}
}
