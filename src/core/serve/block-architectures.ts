/**
 * The decoder block families a lora-pack can come from, as a table: how a
 * module path names its layer and role, and which MLP the block has. The
 * bench serves any pack through its llama-like block (`model-stack.ts`) with
 * each role's shape taken from the pack: grouped-query k/v, a non-square
 * q/o, GPT-2's fused Conv1D `c_attn` (q, k and v in one projection), OPT's
 * `out_proj`/`fc1`/`fc2`, GPT-Neo's and GPT-NeoX's names. A new family is one
 * line of `BLOCK_ARCHITECTURES`.
 *
 * Roles: `q_proj k_proj v_proj o_proj gate_proj up_proj down_proj` as in
 * Llama, plus `qkv_proj` for a fused q/k/v projection (its output is split in
 * three equal parts). LoRA's A/B are [r, in]/[out, r] whatever the base's
 * orientation (Conv1D's fan_in_fan_out concerns the base weight, which the
 * bench stores as Wᵀ [in, out] for every module anyway).
 */
import {ALL_PROJECTIONS, Projection} from '../models/llama.js'

/** A projection's role in a block. */
export type Role = Projection | 'qkv_proj'

/** Every role, in the order a block runs them. */
export const ROLES: readonly Role[] = Object.freeze(['qkv_proj', ...ALL_PROJECTIONS])

/** A block family. */
export interface BlockArchitecture {
  readonly name: string
  /** The layer and role of a module path, or undefined for a path of another family. */
  match(path: string): {layer: number; role: Role} | undefined
  /** The module path of `role` in `layer`. */
  path(layer: number, role: Role): string
  /** Roles of one block (attention and MLP). */
  readonly roles: readonly Role[]
  /** `gated`: SiLU(gate)·up → down (Llama); `plain`: ReLU(up) → down (OPT's fc1/fc2, GPT-2's c_fc/c_proj). */
  readonly mlp: 'gated' | 'plain'
}

/** A table of role ↔ name within a layer's path, built into an architecture. */
function family(name: string, prefix: string, names: Partial<Record<Role, string>>, mlp: 'gated' | 'plain'): BlockArchitecture {
  const roleOf = new Map(Object.entries(names).map(([role, n]) => [n!, role as Role]))
  const pattern = new RegExp(`^${prefix.replace(/\./g, '\\.')}(\\d+)\\.(.+)$`)
  return Object.freeze({
    name,
    match(path: string) {
      const m = pattern.exec(path)
      const role = m ? roleOf.get(m[2]!) : undefined
      return m && role ? {layer: Number(m[1]), role} : undefined
    },
    path: (layer: number, role: Role) => `${prefix}${layer}.${names[role]}`,
    roles: Object.freeze(ROLES.filter((r) => names[r] !== undefined)),
    mlp,
  })
}

/** The block families, most common first; the first whose pattern names a module wins. */
export const BLOCK_ARCHITECTURES: readonly BlockArchitecture[] = Object.freeze([
  family(
    'llama',
    'model.layers.',
    {q_proj: 'self_attn.q_proj', k_proj: 'self_attn.k_proj', v_proj: 'self_attn.v_proj', o_proj: 'self_attn.o_proj', gate_proj: 'mlp.gate_proj', up_proj: 'mlp.up_proj', down_proj: 'mlp.down_proj'},
    'gated',
  ),
  family('opt', 'model.decoder.layers.', {q_proj: 'self_attn.q_proj', k_proj: 'self_attn.k_proj', v_proj: 'self_attn.v_proj', o_proj: 'self_attn.out_proj', up_proj: 'fc1', down_proj: 'fc2'}, 'plain'),
  family('gpt2', 'transformer.h.', {qkv_proj: 'attn.c_attn', o_proj: 'attn.c_proj', up_proj: 'mlp.c_fc', down_proj: 'mlp.c_proj'}, 'plain'),
  family('gpt-neo', 'transformer.h.', {q_proj: 'attn.attention.q_proj', k_proj: 'attn.attention.k_proj', v_proj: 'attn.attention.v_proj', o_proj: 'attn.attention.out_proj', up_proj: 'mlp.c_fc', down_proj: 'mlp.c_proj'}, 'plain'),
  family('gpt-neox', 'gpt_neox.layers.', {qkv_proj: 'attention.query_key_value', o_proj: 'attention.dense', up_proj: 'mlp.dense_h_to_4h', down_proj: 'mlp.dense_4h_to_h'}, 'plain'),
])

/** The architecture named `name` (`llama` when absent). */
export function blockArchitecture(name = 'llama'): BlockArchitecture {
  const a = BLOCK_ARCHITECTURES.find((x) => x.name === name)
  if (!a) throw new Error(`no block architecture "${name}"`)
  return a
}

/** The widths a block's shapes follow from. */
export interface BlockWidths {
  /** The residual width D. */
  hidden: number
  /** The MLP width I. */
  intermediate: number
  /** q's output and o's input (heads × head size); D unless the pack says otherwise. */
  attention: number
  /** k's and v's output (KV heads × head size): a divisor of `attention`. */
  kv: number
}

/** [out, in] of every role of `arch` for these widths (a fused q/k/v is q, k and v side by side). */
export function blockShapes(arch: BlockArchitecture, w: BlockWidths): Partial<Record<Role, [number, number]>> {
  const all: Record<Role, [number, number]> = {
    qkv_proj: [w.attention + 2 * w.kv, w.hidden],
    q_proj: [w.attention, w.hidden],
    k_proj: [w.kv, w.hidden],
    v_proj: [w.kv, w.hidden],
    o_proj: [w.hidden, w.attention],
    gate_proj: [w.intermediate, w.hidden],
    up_proj: [w.intermediate, w.hidden],
    down_proj: [w.hidden, w.intermediate],
  }
  return Object.fromEntries(arch.roles.map((r) => [r, all[r]]))
}
