/**
 * A float64 GPT-2 forward pass written from the formulas (learned positions,
 * pre-LayerNorm blocks, Conv1D layers y = x·W + b with W [in, out], fused
 * q/k/v, tanh GELU, head tied to wte), PEFT's Conv1D LoRA merge
 * (W += s·(B·A)ᵀ), and a deterministic synthetic GPT-2 checkpoint with a
 * byte-level tokenizer, for the GPT-2 engine and nf4 tests. Shares no code with src/.
 */
import {mkdirSync, readFileSync, writeFileSync} from 'node:fs'
import {join} from 'node:path'
import {fromFloat} from '../../src/core/dtype.js'
import {writeSafetensors} from '../../src/core/formats/safetensors-writer.js'
import {synthTokenizer} from '../../src/core/synth/tokenizer.js'
import {readSafetensorsF64} from './llama-reference.js'
import {normal} from './merge-fixtures.js'

export interface Gpt2Dims {
  readonly embd: number
  readonly heads: number
  readonly layers: number
  readonly vocab: number
  readonly positions: number
}

/** Conv1D weights of block i, HF names without the `transformer.` prefix: [name, in, out]. */
export function conv1dWeights(d: Gpt2Dims, i: number): Array<[string, number, number]> {
  return [
    [`h.${i}.attn.c_attn`, d.embd, 3 * d.embd],
    [`h.${i}.attn.c_proj`, d.embd, d.embd],
    [`h.${i}.mlp.c_fc`, d.embd, 4 * d.embd],
    [`h.${i}.mlp.c_proj`, 4 * d.embd, d.embd],
  ]
}

/** Write a GPT-2 checkpoint (names with `transformer.`, the causal-mask buffers included), config.json and a GPT-2-style tokenizer. */
export async function writeGpt2(dir: string, d: Gpt2Dims, seed = 1): Promise<void> {
  mkdirSync(dir, {recursive: true})
  const t: Array<{name: string; shape: number[]; values: Float64Array}> = []
  const add = (name: string, shape: number[], std: number, mean = 0) => t.push({name: `transformer.${name}`, shape, values: normal(shape.reduce((a, b) => a * b, 1), std, seed, name).map((v) => v + mean)})
  add('wte.weight', [d.vocab, d.embd], 0.3)
  add('wpe.weight', [d.positions, d.embd], 0.05)
  for (let i = 0; i < d.layers; i++) {
    add(`h.${i}.ln_1.weight`, [d.embd], 0.05, 1)
    add(`h.${i}.ln_1.bias`, [d.embd], 0.05)
    for (const [name, inF, outF] of conv1dWeights(d, i)) {
      add(`${name}.weight`, [inF, outF], 1 / Math.sqrt(inF))
      add(`${name}.bias`, [outF], 0.02)
    }
    add(`h.${i}.ln_2.weight`, [d.embd], 0.05, 1)
    add(`h.${i}.ln_2.bias`, [d.embd], 0.05)
    const mask = new Float64Array(d.positions * d.positions)
    for (let r = 0; r < d.positions; r++) for (let c = 0; c <= r; c++) mask[r * d.positions + c] = 1
    t.push({name: `transformer.h.${i}.attn.bias`, shape: [1, 1, d.positions, d.positions], values: mask})
  }
  add('ln_f.weight', [d.embd], 0.05, 1)
  add('ln_f.bias', [d.embd], 0.05)
  await writeSafetensors(join(dir, 'model.safetensors'), t.map((x) => ({name: x.name, dtype: 'F32' as const, shape: x.shape, data: fromFloat('F32', x.values)})), {metadata: {format: 'pt'}})
  const config = {
    architectures: ['GPT2LMHeadModel'],
    model_type: 'gpt2',
    activation_function: 'gelu_new',
    n_embd: d.embd,
    n_head: d.heads,
    n_layer: d.layers,
    n_ctx: d.positions,
    n_positions: d.positions,
    n_inner: null,
    vocab_size: d.vocab,
    layer_norm_epsilon: 1e-5,
    scale_attn_weights: true,
    bos_token_id: d.vocab - 1,
    eos_token_id: d.vocab - 1,
  }
  writeFileSync(join(dir, 'config.json'), JSON.stringify(config, null, 2))
  for (const [name, content] of Object.entries(synthTokenizer('byte-level', d.vocab, 'gpt-2')!)) writeFileSync(join(dir, name), JSON.stringify(content))
}

export class Gpt2Reference {
  private constructor(
    readonly dims: Gpt2Dims,
    readonly eps: number,
    private readonly w: Map<string, Float64Array>,
  ) {}

  /** Load a folder written by {@link writeGpt2} (or any GPT-2 checkpoint with one model.safetensors). */
  static load(dir: string): Gpt2Reference {
    const c = JSON.parse(readFileSync(join(dir, 'config.json'), 'utf8')) as Record<string, number>
    const w = new Map<string, Float64Array>()
    for (const [k, v] of readSafetensorsF64(join(dir, 'model.safetensors'))) w.set(k.replace(/^transformer\./, ''), v.values)
    return new Gpt2Reference({embd: c.n_embd!, heads: c.n_head!, layers: c.n_layer!, vocab: c.vocab_size!, positions: c.n_positions!}, c.layer_norm_epsilon ?? 1e-5, w)
  }

  clone(): Gpt2Reference {
    return new Gpt2Reference(this.dims, this.eps, new Map([...this.w].map(([k, v]) => [k, v.slice()])))
  }

  /** A weight by its HF name without `transformer.` (Conv1D weights [in, out]). */
  weight(name: string): Float64Array {
    const v = this.w.get(name)
    if (!v) throw new Error(`gpt2 reference: no ${name}`)
    return v
  }

  setWeight(name: string, values: ArrayLike<number>): void {
    if (this.weight(name).length !== values.length) throw new Error(`gpt2 reference: ${name} length`)
    this.w.set(name, Float64Array.from(values))
  }

  /** PEFT LoRA on Conv1D layers: W [in, out] += w·s·(B·A)ᵀ, s = alpha / r. */
  mergeAdapter(dir: string, weight = 1): void {
    const cfg = JSON.parse(readFileSync(join(dir, 'adapter_config.json'), 'utf8')) as {r: number; lora_alpha: number}
    const t = readSafetensorsF64(join(dir, 'adapter_model.safetensors'))
    for (const [key, a] of t) {
      const m = /^base_model\.model\.(?:transformer\.)?(.+)\.lora_A\.weight$/.exec(key)
      if (!m) continue
      const b = t.get(key.replace('lora_A', 'lora_B'))!
      const [r, inF] = a.shape as [number, number]
      const outF = b.shape[0]!
      const s = (weight * cfg.lora_alpha) / cfg.r
      const w = this.weight(`${m[1]}.weight`)
      for (let i = 0; i < inF; i++) for (let o = 0; o < outF; o++) {
        let sum = 0
        for (let k = 0; k < r; k++) sum += b.values[o * r + k]! * a.values[k * inF + i]!
        w[i * outF + o]! += s * sum
      }
    }
  }

  private layerNorm(x: Float64Array, name: string): Float64Array {
    const n = x.length
    let mean = 0
    for (const v of x) mean += v / n
    let variance = 0
    for (const v of x) variance += (v - mean) ** 2 / n
    const inv = 1 / Math.sqrt(variance + this.eps)
    const g = this.weight(`${name}.weight`)
    const b = this.weight(`${name}.bias`)
    return x.map((v, i) => (v - mean) * inv * g[i]! + b[i]!)
  }

  private conv1d(x: Float64Array, name: string): Float64Array {
    const w = this.weight(`${name}.weight`)
    const bias = this.weight(`${name}.bias`)
    const out = Float64Array.from(bias)
    for (let i = 0; i < x.length; i++) {
      const xi = x[i]!
      for (let o = 0; o < out.length; o++) out[o]! += xi * w[i * out.length + o]!
    }
    return out
  }

  /** Causal forward pass: one [vocab] logits row per position. */
  logits(ids: readonly number[]): Float64Array[] {
    const {embd: D, heads, layers, vocab} = this.dims
    const hd = D / heads
    const wte = this.weight('wte.weight')
    const wpe = this.weight('wpe.weight')
    let x = ids.map((id, p) => Float64Array.from({length: D}, (_, i) => wte[id * D + i]! + wpe[p * D + i]!))
    for (let l = 0; l < layers; l++) {
      const qkv = x.map((row) => this.conv1d(this.layerNorm(row, `h.${l}.ln_1`), `h.${l}.attn.c_attn`))
      const attn = x.map(() => new Float64Array(D))
      for (let h = 0; h < heads; h++)
        for (let p = 0; p < ids.length; p++) {
          const scores = new Float64Array(p + 1)
          for (let t = 0; t <= p; t++) {
            let dot = 0
            for (let i = 0; i < hd; i++) dot += qkv[p]![h * hd + i]! * qkv[t]![D + h * hd + i]!
            scores[t] = dot / Math.sqrt(hd)
          }
          const max = Math.max(...scores)
          let sum = 0
          for (let t = 0; t <= p; t++) sum += scores[t] = Math.exp(scores[t]! - max)
          for (let t = 0; t <= p; t++) for (let i = 0; i < hd; i++) attn[p]![h * hd + i]! += (scores[t]! / sum) * qkv[t]![2 * D + h * hd + i]!
        }
      x = x.map((row, p) => {
        const a = this.conv1d(attn[p]!, `h.${l}.attn.c_proj`)
        return row.map((v, i) => v + a[i]!)
      })
      x = x.map((row) => {
        const f = this.conv1d(this.layerNorm(row, `h.${l}.ln_2`), `h.${l}.mlp.c_fc`)
        const g = f.map((v) => 0.5 * v * (1 + Math.tanh(Math.sqrt(2 / Math.PI) * (v + 0.044715 * v ** 3))))
        const m = this.conv1d(g, `h.${l}.mlp.c_proj`)
        return row.map((v, i) => v + m[i]!)
      })
    }
    return x.map((row) => {
      const h = this.layerNorm(row, 'ln_f')
      const out = new Float64Array(vocab)
      for (let t = 0; t < vocab; t++) {
        let s = 0
        for (let i = 0; i < D; i++) s += h[i]! * wte[t * D + i]!
        out[t] = s
      }
      return out
    })
  }
}
