/**
 * Fixtures for the decoder runtime tests: the stories260K folder, small
 * Llama-family models synthesized deterministically (qwen2-shaped with
 * biases, Llama 3 RoPE scaling, F16/BF16, sharded), stories260K's GGUF
 * rewritten with Q4_0 or Q8_0 weights, and the comparison the "Done when"
 * states (largest absolute difference over the largest reference logit).
 */
import {existsSync, writeFileSync} from 'node:fs'
import {join, resolve} from 'node:path'
import {fromFloat} from '../../src/core/dtype.js'
import type {DType} from '../../src/core/dtype.js'
import {GgufFile} from '../../src/core/formats/gguf-reader.js'
import {GgufWriter} from '../../src/core/formats/gguf-writer.js'
import {writeSafetensors} from '../../src/core/formats/safetensors-writer.js'
import {quantizeQ4_0} from '../../src/core/quant/q4-0.js'
import {Rng} from '../../src/core/random.js'
import {REPO_ROOT} from './index.js'

/** The real trained model (PROVENANCE.md beside it). */
export const STORIES = resolve(REPO_ROOT, '../shared/real-models/stories260K')
/** The greedy continuation of "Once upon a time" quoted in PROVENANCE.md (llama2.c's run.c output). */
export const STORIES_GREEDY =
  'Once upon a time, there was a little girl named Lily. She loved to play outside in the park. One day, she saw a big, red ball. She wanted to play with it, but it was too high.'

/** Whether stories260K is present; prints the skip reason when not. */
/** Why the stories260K tests cannot run here, or undefined when they can: `skipIf(test, storiesMissing())` lists every skipped test with this reason. */
export function storiesMissing(): string | undefined {
  const ok = existsSync(join(STORIES, 'hf/config.json')) && existsSync(join(STORIES, 'gguf/stories260K.gguf'))
  return ok ? undefined : `${STORIES} is absent (stories260K, see ../shared/real-models/PROVENANCE.md)`
}

export function haveStories(suite: string): boolean {
  const ok = existsSync(join(STORIES, 'hf/config.json')) && existsSync(join(STORIES, 'gguf/stories260K.gguf'))
  if (!ok) console.log(`\n  [skip] ${suite}: ${STORIES} is absent, stories260K tests skipped`)
  return ok
}

/** max |a − ref| / max |ref| over every position (rows of `vocab` logits). */
export function relativeError(actual: Float32Array, reference: readonly Float64Array[], vocab: number): number {
  let diff = 0
  let scale = 0
  reference.forEach((row, p) => {
    for (let v = 0; v < vocab; v++) {
      diff = Math.max(diff, Math.abs(actual[p * vocab + v]! - row[v]!))
      scale = Math.max(scale, Math.abs(row[v]!))
    }
  })
  return diff / scale
}

/** Same, for two runtime outputs. */
export function relativeDiff(a: Float32Array, b: Float32Array): number {
  let diff = 0
  let scale = 0
  for (let i = 0; i < a.length; i++) {
    diff = Math.max(diff, Math.abs(a[i]! - b[i]!))
    scale = Math.max(scale, Math.abs(b[i]!))
  }
  return diff / scale
}

export interface SyntheticDecoderSpec {
  modelType: 'llama' | 'qwen2'
  hidden: number
  intermediate: number
  layers: number
  heads: number
  kvHeads: number
  headDim?: number
  vocab: number
  tie: boolean
  /** q/k/v biases (qwen2 always has them). */
  biases: boolean
  ropeTheta?: number
  ropeScaling?: Record<string, unknown> | null
  dtype?: DType
  /** Split the weights over this many shard files with an index. */
  shards?: number
  seed: number
}

/**
 * Write a Hugging Face folder (config.json + safetensors) with weights drawn
 * from seeded normals scaled so activations stay O(1).
 */
export async function writeSyntheticDecoder(dir: string, spec: SyntheticDecoderSpec): Promise<void> {
  const hd = spec.headDim ?? spec.hidden / spec.heads
  const q = spec.heads * hd
  const kv = spec.kvHeads * hd
  const tensors: Array<{name: string; shape: number[]; std: number; mean?: number}> = [{name: 'model.embed_tokens.weight', shape: [spec.vocab, spec.hidden], std: 1}]
  for (let l = 0; l < spec.layers; l++) {
    const p = `model.layers.${l}`
    tensors.push({name: `${p}.input_layernorm.weight`, shape: [spec.hidden], std: 0.1, mean: 1})
    tensors.push({name: `${p}.self_attn.q_proj.weight`, shape: [q, spec.hidden], std: 1 / Math.sqrt(spec.hidden)})
    tensors.push({name: `${p}.self_attn.k_proj.weight`, shape: [kv, spec.hidden], std: 1 / Math.sqrt(spec.hidden)})
    tensors.push({name: `${p}.self_attn.v_proj.weight`, shape: [kv, spec.hidden], std: 1 / Math.sqrt(spec.hidden)})
    if (spec.biases)
      for (const m of ['q_proj', 'k_proj', 'v_proj']) tensors.push({name: `${p}.self_attn.${m}.bias`, shape: [m === 'q_proj' ? q : kv], std: 0.5})
    tensors.push({name: `${p}.self_attn.o_proj.weight`, shape: [spec.hidden, q], std: 1 / Math.sqrt(q)})
    tensors.push({name: `${p}.post_attention_layernorm.weight`, shape: [spec.hidden], std: 0.1, mean: 1})
    tensors.push({name: `${p}.mlp.gate_proj.weight`, shape: [spec.intermediate, spec.hidden], std: 1 / Math.sqrt(spec.hidden)})
    tensors.push({name: `${p}.mlp.up_proj.weight`, shape: [spec.intermediate, spec.hidden], std: 1 / Math.sqrt(spec.hidden)})
    tensors.push({name: `${p}.mlp.down_proj.weight`, shape: [spec.hidden, spec.intermediate], std: 1 / Math.sqrt(spec.intermediate)})
  }
  tensors.push({name: 'model.norm.weight', shape: [spec.hidden], std: 0.1, mean: 1})
  if (!spec.tie) tensors.push({name: 'lm_head.weight', shape: [spec.vocab, spec.hidden], std: 1 / Math.sqrt(spec.hidden)})
  const dtype = spec.dtype ?? 'F32'
  const data = tensors.map((t) => {
    const values = new Rng(spec.seed, t.name).fillNormal(new Float32Array(t.shape.reduce((a, b) => a * b, 1)), t.std, t.mean ?? 0)
    return {name: t.name, dtype, shape: t.shape, data: fromFloat(dtype, values)}
  })
  const config: Record<string, unknown> = {
    architectures: [spec.modelType === 'qwen2' ? 'Qwen2ForCausalLM' : 'LlamaForCausalLM'],
    model_type: spec.modelType,
    hidden_size: spec.hidden,
    intermediate_size: spec.intermediate,
    num_hidden_layers: spec.layers,
    num_attention_heads: spec.heads,
    num_key_value_heads: spec.kvHeads,
    ...(spec.headDim ? {head_dim: spec.headDim} : {}),
    vocab_size: spec.vocab,
    max_position_embeddings: 256,
    rms_norm_eps: 1e-6,
    rope_theta: spec.ropeTheta ?? 10000,
    rope_scaling: spec.ropeScaling ?? null,
    tie_word_embeddings: spec.tie,
    bos_token_id: 1,
    eos_token_id: 2,
    torch_dtype: ({F32: 'float32', F16: 'float16', BF16: 'bfloat16'} as Record<string, string>)[dtype],
  }
  writeFileSync(join(dir, 'config.json'), JSON.stringify(config, null, 2))
  const shards = spec.shards ?? 1
  if (shards === 1) return writeSafetensors(join(dir, 'model.safetensors'), data)
  const per = Math.ceil(data.length / shards)
  const weightMap: Record<string, string> = {}
  for (let s = 0; s < shards; s++) {
    const file = `model-${String(s + 1).padStart(5, '0')}-of-${String(shards).padStart(5, '0')}.safetensors`
    const part = data.slice(s * per, (s + 1) * per)
    for (const t of part) weightMap[t.name] = file
    await writeSafetensors(join(dir, file), part)
  }
  writeFileSync(join(dir, 'model.safetensors.index.json'), JSON.stringify({metadata: {}, weight_map: weightMap}))
}

/** llama.cpp's `quantize_row_q8_0_ref`: d = amax / 127 (f16), q = round(x / d). */
export function quantizeQ8_0(values: Float32Array): Uint8Array {
  const out = new Uint8Array((values.length / 32) * 34)
  const view = new DataView(out.buffer)
  for (let b = 0; b < values.length / 32; b++) {
    let amax = 0
    for (let j = 0; j < 32; j++) amax = Math.max(amax, Math.abs(values[b * 32 + j]!))
    const d = amax / 127
    const id = d ? 1 / d : 0
    out.set(fromFloat('F16', Float32Array.of(d)), b * 34)
    for (let j = 0; j < 32; j++) {
      const x = values[b * 32 + j]! * id
      view.setInt8(b * 34 + 2 + j, Math.sign(x) * Math.round(Math.abs(x))) // roundf: half away from zero
    }
  }
  return out
}

/** Q8_0 decoding written from ggml's block layout (f16 d, 32 signed bytes). */
export function decodeQ8_0(bytes: Uint8Array, count: number): Float64Array {
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength)
  const out = new Float64Array(count)
  for (let b = 0; b < count / 32; b++) {
    const h = view.getUint16(b * 34, true)
    const e = (h >> 10) & 31
    const m = h & 1023
    const d = (h & 0x8000 ? -1 : 1) * (e === 0 ? m * 2 ** -24 : (1 + m / 1024) * 2 ** (e - 15))
    for (let j = 0; j < 32; j++) out[b * 32 + j] = Math.fround(view.getInt8(b * 34 + 2 + j) * d)
  }
  return out
}

/**
 * Rewrite a GGUF with every 2-D F32 tensor whose rows are a multiple of 32
 * stored as `type` (the others kept), metadata copied.
 * @returns the names of the quantized tensors
 */
export async function writeQuantizedGguf(source: string, out: string, type: 'Q4_0' | 'Q8_0'): Promise<string[]> {
  const src = await GgufFile.open(source)
  try {
    const quantized: string[] = []
    const specs = [...src.tensors.values()].map((t) => {
      const q = t.shape.length === 2 && t.type.name === 'F32' && t.shape[1]! % 32 === 0
      if (q) quantized.push(t.name)
      return {name: t.name, shape: t.shape, type: q ? type : t.type.name}
    })
    const writer = await GgufWriter.create(out, [...src.kv.values()], specs)
    for (const t of src.tensors.values()) {
      const bytes = await src.readBytes(t.name)
      if (!quantized.includes(t.name)) await writer.writeTensor(t.name, bytes)
      else {
        const values = new Float32Array(bytes.buffer, bytes.byteOffset, bytes.byteLength / 4)
        await writer.writeTensor(t.name, type === 'Q4_0' ? quantizeQ4_0(values) : quantizeQ8_0(values))
      }
    }
    await writer.commit()
    return quantized
  } finally {
    await src.close()
  }
}
