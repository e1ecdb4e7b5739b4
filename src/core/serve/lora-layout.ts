/**
 * The modules of a benchmark model and how their LoRA weights are laid out
 * for routing: which projections exist, which carry adapters, and which
 * adapted projections share an input and so share one fused A stack.
 *
 * Layout (f32, S = adapters + 1 slots, slot 0 all zeros = "no adapter"):
 * - base weight of projection p: `L{l}.{p}.W`, W^T `[in, out]`;
 * - fused A of a group g (members m₁…m_G with the same input):
 *   `L{l}.{g}.A` `[S, G·R, in]`, member j's rows at `j·R … j·R+R−1`;
 * - B of a member: `L{l}.{p}.B` `[S, out, R]`, scaling folded in (s·B);
 * - shared-B form: `L{l}.{g}.Ak` `[S, G·K, in]` (scaling folded in) and
 *   `L{l}.{p}.Bk` `[K, out]` (the transposed shared basis).
 */
import {ALL_PROJECTIONS, ATTENTION_PROJECTIONS, Projection, projectionPath, projectionShape} from '../models/llama.js'
import {Role, blockArchitecture} from './block-architectures.js'

export type {Role} from './block-architectures.js'

/**
 * A block whose shapes come from a pack: its family (`block-architectures.ts`)
 * and [out, in] of every role, the same in every layer. Absent: the Llama
 * block of `hidden`/`intermediate` (square q/k/v/o).
 */
export interface BlockShapes {
  architecture: string
  shapes: Partial<Record<Role, [number, number]>>
}

/** `layer`: one hidden×hidden linear; `llama`: L decoder blocks of linear work. */
export type BenchModelKind = 'layer' | 'llama'

/** The dims of a bench model and the projections its adapters target. */
export interface StackDims {
  model: BenchModelKind
  hidden: number
  intermediate: number
  layers: number
  /** Adapted projections (for `layer`: q_proj stands for the one linear). */
  targets: readonly Role[]
  /** Shapes and module paths from a pack (GQA, non-square q/o, GPT-2, OPT); absent = the square Llama block. */
  block?: BlockShapes
}

/** One projection of the model (`in`, `out` of its Linear), adapted or not. */
export interface ModuleSpec {
  /** `L0.q_proj`. */
  key: string
  layer: number
  projection: Role
  /** PEFT module path (`model.layers.0.self_attn.q_proj`, `transformer.h.0.attn.c_attn`). */
  path: string
  in: number
  out: number
  targeted: boolean
}

/** Adapted projections of one layer that share an input and so one fused A stack. */
export interface GroupSpec {
  /** `L0.qkv`. */
  key: string
  layer: number
  in: number
  /** Adapted members, in projection order. */
  members: ModuleSpec[]
}

/** Every projection of the model, targeted or not, in execution order. */
export function moduleSpecs(dims: StackDims): ModuleSpec[] {
  const arch = dims.block && dims.model !== 'layer' ? blockArchitecture(dims.block.architecture) : undefined
  const projections: readonly Role[] = dims.model === 'layer' ? ['q_proj'] : (arch?.roles ?? ALL_PROJECTIONS)
  const layers = dims.model === 'layer' ? 1 : dims.layers
  const out: ModuleSpec[] = []
  for (let layer = 0; layer < layers; layer++) {
    for (const projection of projections) {
      const given = arch ? dims.block!.shapes[projection] : undefined
      if (arch && !given) throw new Error(`block ${arch.name}: no shape for ${projection}`)
      const [o, i] = given ?? projectionShape(dims, projection as Projection)
      const path = arch ? arch.path(layer, projection) : projectionPath(layer, projection as Projection)
      out.push({key: `L${layer}.${projection}`, layer, projection, path, in: i, out: o, targeted: dims.model === 'layer' || dims.targets.includes(projection)})
    }
  }
  return out
}

/** Which group a projection's A belongs to when inputs are shared. */
function groupName(projection: Role, fuse: boolean): string {
  if (projection === 'qkv_proj') return 'qkv'
  if (!fuse) return projection.replace('_proj', '')
  if (projection === 'q_proj' || projection === 'k_proj' || projection === 'v_proj') return 'qkv'
  if (projection === 'gate_proj' || projection === 'up_proj') return 'gu'
  return projection.replace('_proj', '')
}

/**
 * Groups of adapted projections. With `fuse`, q/k/v (one input) share a
 * group and so do gate/up; without it every projection is its own group.
 */
export function loraGroups(dims: StackDims, fuse: boolean): GroupSpec[] {
  const groups = new Map<string, GroupSpec>()
  for (const m of moduleSpecs(dims)) {
    if (!m.targeted) continue
    const key = `L${m.layer}.${groupName(m.projection, fuse)}`
    let group = groups.get(key)
    if (!group) {
      group = {key, layer: m.layer, in: m.in, members: []}
      groups.set(key, group)
    }
    group.members.push(m)
  }
  return [...groups.values()]
}

/** The group holding `module`'s A rows and the member's index in it. */
export function groupOf(groups: readonly GroupSpec[], moduleKey: string): {group: GroupSpec; index: number} {
  for (const group of groups) {
    const index = group.members.findIndex((m) => m.key === moduleKey)
    if (index >= 0) return {group, index}
  }
  throw new Error(`module ${moduleKey} is not adapted`)
}

/** Whether the attention projections are all present (the llama block wiring needs them). */
export function isAttention(p: Role): boolean {
  return p === 'qkv_proj' || (ATTENTION_PROJECTIONS as readonly string[]).includes(p)
}

/** Tensor names of the layout, from a module's or group's key (`ModuleSpec`, `GroupSpec`, or any keyed projection). */
export const layoutNames = {
  weight: (m: {key: string}) => `${m.key}.W`,
  norm: (layer: number, which: 1 | 2) => `L${layer}.norm${which}`,
  groupA: (g: {key: string}) => `${g.key}.A`,
  moduleB: (m: {key: string}) => `${m.key}.B`,
  groupAk: (g: {key: string}) => `${g.key}.Ak`,
  moduleBk: (m: {key: string}) => `${m.key}.Bk`,
}
