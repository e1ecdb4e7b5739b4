/**
 * Hugging Face ↔ llama.cpp (GGUF) tensor names per architecture, and the
 * q/k row permutation llama.cpp's converter applies to llama-family models
 * (`convert_hf_to_gguf.py` `LlamaModel.permute`): llama.cpp's llama RoPE
 * rotates adjacent pairs (2i, 2i+1) where transformers rotates (i, i + d/2).
 */

/** One architecture's mapping: its GGUF name and how its tensors are named and laid out. */
export interface GgufArchitecture {
  /** `general.architecture` in the GGUF. */
  readonly gguf: string
  /** `model_type` values in config.json that map to it. */
  readonly modelTypes: readonly string[]
  /** Whether q/k rows (and their biases, and LoRA B rows) are permuted to llama.cpp's RoPE order. */
  readonly permuteQK: boolean
  /** A prefix some checkpoints put before every name (GPT-2's `transformer.`), ignored when matching. */
  readonly optionalPrefix?: string
  /** [HF name template, GGUF name template] pairs: `{n}` is the block index, `{p}` the parameter (weight or bias). */
  readonly names: ReadonlyArray<readonly [hf: string, gguf: string]>
}

const LLAMA_NAMES: ReadonlyArray<readonly [string, string]> = [
  ['model.embed_tokens.{p}', 'token_embd.{p}'],
  ['model.layers.{n}.input_layernorm.{p}', 'blk.{n}.attn_norm.{p}'],
  ['model.layers.{n}.self_attn.q_proj.{p}', 'blk.{n}.attn_q.{p}'],
  ['model.layers.{n}.self_attn.k_proj.{p}', 'blk.{n}.attn_k.{p}'],
  ['model.layers.{n}.self_attn.v_proj.{p}', 'blk.{n}.attn_v.{p}'],
  ['model.layers.{n}.self_attn.o_proj.{p}', 'blk.{n}.attn_output.{p}'],
  ['model.layers.{n}.post_attention_layernorm.{p}', 'blk.{n}.ffn_norm.{p}'],
  ['model.layers.{n}.mlp.gate_proj.{p}', 'blk.{n}.ffn_gate.{p}'],
  ['model.layers.{n}.mlp.up_proj.{p}', 'blk.{n}.ffn_up.{p}'],
  ['model.layers.{n}.mlp.down_proj.{p}', 'blk.{n}.ffn_down.{p}'],
  ['model.norm.{p}', 'output_norm.{p}'],
  ['lm_head.{p}', 'output.{p}'],
]

const GPT2_NAMES: ReadonlyArray<readonly [string, string]> = [
  ['wte.{p}', 'token_embd.{p}'],
  ['wpe.{p}', 'position_embd.{p}'],
  ['h.{n}.ln_1.{p}', 'blk.{n}.attn_norm.{p}'],
  ['h.{n}.attn.c_attn.{p}', 'blk.{n}.attn_qkv.{p}'],
  ['h.{n}.attn.c_proj.{p}', 'blk.{n}.attn_output.{p}'],
  ['h.{n}.ln_2.{p}', 'blk.{n}.ffn_norm.{p}'],
  ['h.{n}.mlp.c_fc.{p}', 'blk.{n}.ffn_up.{p}'],
  ['h.{n}.mlp.c_proj.{p}', 'blk.{n}.ffn_down.{p}'],
  ['ln_f.{p}', 'output_norm.{p}'],
  ['lm_head.{p}', 'output.{p}'],
]

/** The architectures `lora` maps, keyed by their GGUF name. */
export const GGUF_ARCHITECTURES: Readonly<Record<string, GgufArchitecture>> = Object.freeze({
  llama: {gguf: 'llama', modelTypes: ['llama', 'mistral'], permuteQK: true, names: LLAMA_NAMES},
  // llama.cpp runs qwen2 with NEOX-style RoPE (rotate-half, like transformers): no permutation.
  qwen2: {gguf: 'qwen2', modelTypes: ['qwen2'], permuteQK: false, names: LLAMA_NAMES},
  gpt2: {gguf: 'gpt2', modelTypes: ['gpt2'], permuteQK: false, optionalPrefix: 'transformer.', names: GPT2_NAMES},
})

/** The architecture for a config.json `model_type`, or undefined when `lora` has no mapping for it. */
export function ggufArchitectureForModelType(modelType: string): GgufArchitecture | undefined {
  return Object.values(GGUF_ARCHITECTURES).find((a) => a.modelTypes.includes(modelType))
}

function templatePattern(template: string): RegExp {
  return new RegExp(`^${template.replace(/\./g, '\\.').replace('{n}', '(?<n>\\d+)').replace('{p}', '(?<p>weight|bias)')}$`)
}

function translate(name: string, pairs: ReadonlyArray<readonly [string, string]>, from: 0 | 1): string | undefined {
  for (const pair of pairs) {
    const m = templatePattern(pair[from]).exec(name)
    if (m) return pair[1 - from]!.replace('{n}', m.groups!.n ?? '').replace('{p}', m.groups!.p!)
  }
  return undefined
}

/** The GGUF tensor name of a Hugging Face tensor, or undefined when the architecture has none for it. */
export function ggufTensorName(arch: GgufArchitecture, hfName: string): string | undefined {
  const name = arch.optionalPrefix && hfName.startsWith(arch.optionalPrefix) ? hfName.slice(arch.optionalPrefix.length) : hfName
  return translate(name, arch.names, 0)
}

/** The Hugging Face name of a GGUF tensor (without any optional prefix), or undefined when it has none. */
export function hfTensorName(arch: GgufArchitecture, ggufName: string): string | undefined {
  return translate(ggufName, arch.names, 1)
}

/** Which role a q/k tensor plays for the permutation, or undefined for every other tensor. */
export function qkRole(hfName: string): 'q' | 'k' | undefined {
  if (/\.self_attn\.q_proj\.(weight|bias)$/.test(hfName)) return 'q'
  if (/\.self_attn\.k_proj\.(weight|bias)$/.test(hfName)) return 'k'
  return undefined
}

/**
 * Rows of a q or k tensor ([heads·headDim, cols], row-major) in llama.cpp's
 * order: within each head, row j·d/2 + i moves to 2i + j.
 * @param heads query heads for q, KV heads for k
 */
export function permuteRowsToGguf<T extends ArrayLike<number> & {slice(a?: number, b?: number): T; set(a: ArrayLike<number>, o?: number): void}>(values: T, heads: number, cols: number): T {
  return moveRows(values, heads, cols, (hd, i, j) => [j * (hd / 2) + i, 2 * i + j])
}

/**
 * The row order of {@link permuteRowsToGguf} as indices: row `r` of the
 * result is row `order[r]` of the input (`rows` rows in `heads` heads), so
 * that a loop can read rows in llama.cpp's order without moving them first.
 */
export function ggufRowOrder(rows: number, heads: number): Int32Array {
  const hd = rows / heads
  if (!Number.isInteger(hd) || hd % 2 !== 0) throw new RangeError(`cannot permute ${rows} rows as ${heads} heads`)
  const order = new Int32Array(rows)
  for (let h = 0; h < heads; h++)
    for (let j = 0; j < 2; j++)
      for (let i = 0; i < hd / 2; i++) order[h * hd + 2 * i + j] = h * hd + j * (hd / 2) + i
  return order
}

/** The inverse of {@link permuteRowsToGguf}: llama.cpp's q/k row order back to transformers'. */
export function permuteRowsFromGguf<T extends ArrayLike<number> & {slice(a?: number, b?: number): T; set(a: ArrayLike<number>, o?: number): void}>(values: T, heads: number, cols: number): T {
  return moveRows(values, heads, cols, (hd, i, j) => [2 * i + j, j * (hd / 2) + i])
}

function moveRows<T extends ArrayLike<number> & {slice(a?: number, b?: number): T; set(a: ArrayLike<number>, o?: number): void}>(
  values: T,
  heads: number,
  cols: number,
  map: (headDim: number, i: number, j: number) => [from: number, to: number],
): T {
  const rows = values.length / cols
  const hd = rows / heads
  if (!Number.isInteger(rows) || !Number.isInteger(hd) || hd % 2 !== 0) throw new RangeError(`cannot permute ${values.length} values as ${heads} heads × rows of ${cols}`)
  const out = values.slice()
  for (let h = 0; h < heads; h++)
    for (let j = 0; j < 2; j++)
      for (let i = 0; i < hd / 2; i++) {
        const [from, to] = map(hd, i, j)
        out.set(values.slice((h * hd + from) * cols, (h * hd + from + 1) * cols), (h * hd + to) * cols)
      }
  return out
}
