/**
 * An independent float64 Llama-family forward pass, written from the formulas
 * (RMSNorm, rotate-half RoPE with the linear and Llama 3 scalings, grouped-query
 * causal attention, SwiGLU, tied or untied head, q/k/v biases when present) and
 * a PEFT LoRA merge written from PEFT's definitions. It shares no code with
 * src/: the runtime, eval and engine tests compare what `lora` computes or
 * writes against it.
 */
import {readFileSync, existsSync} from 'node:fs'
import {join} from 'node:path'

export interface RopeScaling {
  readonly type: 'linear' | 'llama3'
  readonly factor: number
  readonly lowFreqFactor?: number
  readonly highFreqFactor?: number
  readonly originalMaxPositions?: number
}

export interface LlamaReferenceConfig {
  readonly hidden: number
  readonly intermediate: number
  readonly layers: number
  readonly heads: number
  readonly kvHeads: number
  readonly headDim: number
  readonly vocab: number
  readonly rmsEps: number
  readonly ropeTheta: number
  readonly ropeScaling: RopeScaling | null
  readonly tieEmbeddings: boolean
}

// ------------------------------------------------------------------ safetensors, read whole (test fixtures are small)

function f16ToNumber(h: number): number {
  const s = h & 0x8000 ? -1 : 1
  const e = (h >> 10) & 0x1f
  const m = h & 0x3ff
  if (e === 0) return s * m * 2 ** -24
  if (e === 31) return m ? NaN : s * Infinity
  return s * (1 + m / 1024) * 2 ** (e - 15)
}

/** Every tensor of one safetensors file as float64, keyed by name, with its shape. */
export function readSafetensorsF64(path: string): Map<string, {shape: number[]; values: Float64Array}> {
  const buf = readFileSync(path)
  const n = Number(buf.readBigUInt64LE(0))
  const header = JSON.parse(buf.toString('utf8', 8, 8 + n)) as Record<string, {dtype: string; shape: number[]; data_offsets: [number, number]}>
  const base = 8 + n
  const out = new Map<string, {shape: number[]; values: Float64Array}>()
  for (const [name, info] of Object.entries(header)) {
    if (name === '__metadata__') continue
    const [begin, end] = info.data_offsets
    const count = info.shape.reduce((a, b) => a * b, 1)
    const values = new Float64Array(count)
    const at = base + begin
    for (let i = 0; i < count; i++) {
      switch (info.dtype) {
        case 'F64': values[i] = buf.readDoubleLE(at + 8 * i); break
        case 'F32': values[i] = buf.readFloatLE(at + 4 * i); break
        case 'F16': values[i] = f16ToNumber(buf.readUInt16LE(at + 2 * i)); break
        case 'BF16': {
          const b = Buffer.alloc(4)
          b.writeUInt16LE(buf.readUInt16LE(at + 2 * i), 2)
          values[i] = b.readFloatLE(0)
          break
        }
        default: throw new Error(`${path}: dtype ${info.dtype} not supported by the reference`)
      }
    }
    if (end - begin !== count * ({F64: 8, F32: 4, F16: 2, BF16: 2} as Record<string, number>)[info.dtype]!) throw new Error(`${path}: ${name} size`)
    out.set(name, {shape: info.shape, values})
  }
  return out
}

function readModelTensors(dir: string): Map<string, {shape: number[]; values: Float64Array}> {
  const index = join(dir, 'model.safetensors.index.json')
  if (!existsSync(index)) return readSafetensorsF64(join(dir, 'model.safetensors'))
  const map = (JSON.parse(readFileSync(index, 'utf8')) as {weight_map: Record<string, string>}).weight_map
  const out = new Map<string, {shape: number[]; values: Float64Array}>()
  for (const shard of new Set(Object.values(map))) for (const [k, v] of readSafetensorsF64(join(dir, shard))) out.set(k, v)
  return out
}

// ------------------------------------------------------------------ config

function readConfig(dir: string, names: ReadonlySet<string>): LlamaReferenceConfig {
  const c = JSON.parse(readFileSync(join(dir, 'config.json'), 'utf8')) as Record<string, any>
  const hidden = c.hidden_size as number
  const heads = c.num_attention_heads as number
  const rs = c.rope_scaling as Record<string, any> | null | undefined
  let ropeScaling: RopeScaling | null = null
  if (rs) {
    const type = (rs.rope_type ?? rs.type) as string
    if (type === 'linear') ropeScaling = {type: 'linear', factor: rs.factor}
    else if (type === 'llama3')
      ropeScaling = {type: 'llama3', factor: rs.factor, lowFreqFactor: rs.low_freq_factor, highFreqFactor: rs.high_freq_factor, originalMaxPositions: rs.original_max_position_embeddings}
    else if (type !== 'default') throw new Error(`reference: rope_scaling ${type} not implemented`)
  }
  return {
    hidden,
    intermediate: c.intermediate_size,
    layers: c.num_hidden_layers,
    heads,
    kvHeads: c.num_key_value_heads ?? heads,
    headDim: c.head_dim ?? hidden / heads,
    vocab: c.vocab_size,
    rmsEps: c.rms_norm_eps ?? 1e-6,
    ropeTheta: c.rope_theta ?? 10000,
    ropeScaling,
    tieEmbeddings: c.tie_word_embeddings === true || !names.has('lm_head.weight'),
  }
}

/** RoPE inverse frequencies [headDim / 2], with the configured scaling (transformers' definitions). */
export function ropeInverseFrequencies(config: LlamaReferenceConfig): Float64Array {
  const half = config.headDim / 2
  const inv = new Float64Array(half)
  for (let i = 0; i < half; i++) inv[i] = 1 / config.ropeTheta ** ((2 * i) / config.headDim)
  const s = config.ropeScaling
  if (s?.type === 'linear') for (let i = 0; i < half; i++) inv[i]! /= s.factor
  if (s?.type === 'llama3') {
    const old = s.originalMaxPositions!
    const lowWavelen = old / s.lowFreqFactor!
    const highWavelen = old / s.highFreqFactor!
    for (let i = 0; i < half; i++) {
      const wavelen = (2 * Math.PI) / inv[i]!
      if (wavelen > lowWavelen) inv[i] = inv[i]! / s.factor
      else if (wavelen >= highWavelen) {
        const smooth = (old / wavelen - s.lowFreqFactor!) / (s.highFreqFactor! - s.lowFreqFactor!)
        inv[i] = (1 - smooth) * (inv[i]! / s.factor) + smooth * inv[i]!
      }
    }
  }
  return inv
}

// ------------------------------------------------------------------ PEFT merge, from PEFT's definitions

/** PEFT's `get_pattern_key`: the first key equal to the module name or matching `(.*\.)?(key)$`. */
function patternValue(pattern: Record<string, number> | undefined, module: string): number | undefined {
  if (!pattern) return undefined
  for (const [key, value] of Object.entries(pattern)) if (module === key || new RegExp(`^(.*\\.)?(${key})$`).test(module)) return value
  return undefined
}

// ------------------------------------------------------------------ the model

export class LlamaReference {
  private constructor(
    readonly config: LlamaReferenceConfig,
    private readonly tensors: Map<string, Float64Array>,
  ) {}

  /** Load `config.json` and `model.safetensors` (or a sharded index) from a Hugging Face folder. */
  static async fromHfFolder(dir: string): Promise<LlamaReference> {
    const raw = readModelTensors(dir)
    const config = readConfig(dir, new Set(raw.keys()))
    const tensors = new Map<string, Float64Array>()
    for (const [k, v] of raw) tensors.set(k, v.values)
    return new LlamaReference(config, tensors)
  }

  /** A deep copy (weights included), to derive variants from one loaded model. */
  clone(): LlamaReference {
    const copy = new Map<string, Float64Array>()
    for (const [k, v] of this.tensors) copy.set(k, v.slice())
    return new LlamaReference(this.config, copy)
  }

  /** Names of every tensor held. */
  names(): string[] {
    return [...this.tensors.keys()]
  }

  /** A weight by its Hugging Face name, row-major as stored ([out, in] for Linear). */
  weight(name: string): Float64Array {
    const w = this.tensors.get(name)
    if (!w) throw new Error(`reference: no tensor ${name}`)
    return w
  }

  /** Replace a weight (same length), e.g. with its dequantized 4-bit values. */
  setWeight(name: string, values: Float64Array): void {
    if (this.weight(name).length !== values.length) throw new Error(`reference: ${name} has ${this.weight(name).length} values, got ${values.length}`)
    this.tensors.set(name, Float64Array.from(values))
  }

  /**
   * Merge a PEFT LoRA adapter folder in float64: W += w · s · B · A with
   * s = alpha / r (alpha / √r with rsLoRA), rank_pattern and alpha_pattern per module.
   */
  async mergeAdapter(dir: string, weight = 1): Promise<void> {
    const cfg = JSON.parse(readFileSync(join(dir, 'adapter_config.json'), 'utf8')) as Record<string, any>
    if (cfg.fan_in_fan_out) throw new Error('reference: fan_in_fan_out not supported')
    const t = readSafetensorsF64(join(dir, 'adapter_model.safetensors'))
    for (const [key, a] of t) {
      const m = /^base_model\.model\.(.+)\.lora_A(?:\.default)?\.weight$/.exec(key)
      if (!m) continue
      const module = m[1]!
      const b = t.get(key.replace('lora_A', 'lora_B'))
      if (!b) throw new Error(`reference: ${key} has no lora_B`)
      const r = patternValue(cfg.rank_pattern, module) ?? (cfg.r as number)
      const alpha = patternValue(cfg.alpha_pattern, module) ?? (cfg.lora_alpha as number)
      const s = (weight * alpha) / (cfg.use_rslora ? Math.sqrt(r) : r)
      const [rank, inDim] = a.shape as [number, number]
      const [outDim] = b.shape as [number, number]
      if (rank !== r || b.shape[1] !== r) throw new Error(`reference: ${module} rank ${rank} vs config ${r}`)
      const w = this.weight(`${module}.weight`)
      if (w.length !== outDim * inDim) throw new Error(`reference: ${module} shape`)
      for (let o = 0; o < outDim; o++)
        for (let k = 0; k < r; k++) {
          const bok = s * b.values[o * r + k]!
          if (bok === 0) continue
          const row = k * inDim
          const dst = o * inDim
          for (let i = 0; i < inDim; i++) w[dst + i]! += bok * a.values[row + i]!
        }
    }
  }

  /** Causal forward pass over `ids`: one row of `vocab` logits per position. */
  logits(ids: readonly number[]): Float64Array[] {
    const c = this.config
    const n = ids.length
    const D = c.hidden
    const hd = c.headDim
    const group = c.heads / c.kvHeads
    const embed = this.weight('model.embed_tokens.weight')
    let x: Float64Array[] = ids.map((id) => embed.slice(id * D, (id + 1) * D))
    const inv = ropeInverseFrequencies(c)
    const cos: Float64Array[] = []
    const sin: Float64Array[] = []
    for (let p = 0; p < n; p++) {
      cos.push(inv.map((f) => Math.cos(p * f)))
      sin.push(inv.map((f) => Math.sin(p * f)))
    }
    for (let l = 0; l < c.layers; l++) {
      const pre = `model.layers.${l}`
      const h = x.map((row) => this.rmsNorm(row, `${pre}.input_layernorm.weight`))
      const q = h.map((row) => this.linear(row, `${pre}.self_attn.q_proj`))
      const k = h.map((row) => this.linear(row, `${pre}.self_attn.k_proj`))
      const v = h.map((row) => this.linear(row, `${pre}.self_attn.v_proj`))
      for (let p = 0; p < n; p++) {
        rotate(q[p]!, c.heads, hd, cos[p]!, sin[p]!)
        rotate(k[p]!, c.kvHeads, hd, cos[p]!, sin[p]!)
      }
      const attn = Array.from({length: n}, () => new Float64Array(c.heads * hd))
      const scale = 1 / Math.sqrt(hd)
      const scores = new Float64Array(n)
      // keys and values of every position side by side, [n, kvHeads·hd]
      const kvWidth = c.kvHeads * hd
      const K = new Float64Array(n * kvWidth)
      const V = new Float64Array(n * kvWidth)
      for (let t = 0; t < n; t++) {
        K.set(k[t]!, t * kvWidth)
        V.set(v[t]!, t * kvWidth)
      }
      for (let head = 0; head < c.heads; head++) {
        const kvAt = Math.floor(head / group) * hd
        for (let p = 0; p < n; p++) {
          const qp = q[p]!
          const qAt = head * hd
          let max = -Infinity
          for (let t = 0; t <= p; t++) {
            let dot = 0
            const at = t * kvWidth + kvAt
            for (let i = 0; i < hd; i++) dot += qp[qAt + i]! * K[at + i]!
            const score = dot * scale
            scores[t] = score
            if (score > max) max = score
          }
          let sum = 0
          for (let t = 0; t <= p; t++) sum += scores[t] = Math.exp(scores[t]! - max)
          const out = attn[p]!
          for (let t = 0; t <= p; t++) {
            const w = scores[t]! / sum
            const at = t * kvWidth + kvAt
            for (let i = 0; i < hd; i++) out[qAt + i]! += w * V[at + i]!
          }
        }
      }
      x = x.map((row, p) => add(row, this.linear(attn[p]!, `${pre}.self_attn.o_proj`)))
      const h2 = x.map((row) => this.rmsNorm(row, `${pre}.post_attention_layernorm.weight`))
      x = x.map((row, p) => {
        const gate = this.linear(h2[p]!, `${pre}.mlp.gate_proj`)
        const up = this.linear(h2[p]!, `${pre}.mlp.up_proj`)
        for (let i = 0; i < gate.length; i++) gate[i] = (gate[i]! / (1 + Math.exp(-gate[i]!))) * up[i]!
        return add(row, this.linear(gate, `${pre}.mlp.down_proj`))
      })
    }
    const head = c.tieEmbeddings ? embed : this.weight('lm_head.weight')
    return x.map((row) => matVec(head, c.vocab, D, this.rmsNorm(row, 'model.norm.weight')))
  }

  private rmsNorm(row: Float64Array, weightName: string): Float64Array {
    const w = this.weight(weightName)
    let ss = 0
    for (const v of row) ss += v * v
    const inv = 1 / Math.sqrt(ss / row.length + this.config.rmsEps)
    return row.map((v, i) => v * inv * w[i]!)
  }

  private linear(row: Float64Array, module: string): Float64Array {
    const w = this.weight(`${module}.weight`)
    const out = matVec(w, w.length / row.length, row.length, row)
    const bias = this.tensors.get(`${module}.bias`)
    if (bias) for (let i = 0; i < out.length; i++) out[i]! += bias[i]!
    return out
  }
}

function matVec(w: Float64Array, rows: number, cols: number, x: Float64Array): Float64Array {
  const out = new Float64Array(rows)
  for (let r = 0; r < rows; r++) {
    let s = 0
    const at = r * cols
    for (let i = 0; i < cols; i++) s += w[at + i]! * x[i]!
    out[r] = s
  }
  return out
}

function add(a: Float64Array, b: Float64Array): Float64Array {
  return a.map((v, i) => v + b[i]!)
}

/** Rotate-half RoPE in place: pairs (i, i + hd/2) of each head. */
function rotate(row: Float64Array, heads: number, hd: number, cos: Float64Array, sin: Float64Array): void {
  const half = hd / 2
  for (let h = 0; h < heads; h++) {
    const at = h * hd
    for (let i = 0; i < half; i++) {
      const a = row[at + i]!
      const b = row[at + half + i]!
      row[at + i] = a * cos[i]! - b * sin[i]!
      row[at + half + i] = b * cos[i]! + a * sin[i]!
    }
  }
}

// ------------------------------------------------------------------ distributions

/** log softmax of one logits row, in float64. */
export function logSoftmax(logits: ArrayLike<number>): Float64Array {
  let max = -Infinity
  for (let i = 0; i < logits.length; i++) if (logits[i]! > max) max = logits[i]!
  let sum = 0
  for (let i = 0; i < logits.length; i++) sum += Math.exp(logits[i]! - max)
  const lse = max + Math.log(sum)
  const out = new Float64Array(logits.length)
  for (let i = 0; i < logits.length; i++) out[i] = logits[i]! - lse
  return out
}

/** KL(ref ‖ other) in nats between the softmax distributions of two logits rows. */
export function klDivergence(refLogits: ArrayLike<number>, otherLogits: ArrayLike<number>): number {
  const p = logSoftmax(refLogits)
  const q = logSoftmax(otherLogits)
  let kl = 0
  for (let i = 0; i < p.length; i++) kl += Math.exp(p[i]!) * (p[i]! - q[i]!)
  return kl
}

/** KL(P ‖ Q) in nats between two probability vectors (e.g. llama.cpp's), zeros in Q floored at 1e-30. */
export function klDivergenceProbs(p: ArrayLike<number>, q: ArrayLike<number>): number {
  let kl = 0
  for (let i = 0; i < p.length; i++) if (p[i]! > 0) kl += p[i]! * (Math.log(p[i]!) - Math.log(Math.max(q[i]!, 1e-30)))
  return kl
}

/** Index of the largest value. */
export function argmax(row: ArrayLike<number>): number {
  let best = 0
  for (let i = 1; i < row.length; i++) if (row[i]! > row[best]!) best = i
  return best
}

/** Mean negative log-likelihood of ids[p + 1] under row p (nats); perplexity is its exp. */
export function meanNll(rows: readonly ArrayLike<number>[], ids: readonly number[]): number {
  let sum = 0
  for (let p = 0; p + 1 < ids.length; p++) sum -= logSoftmax(rows[p]!)[ids[p + 1]!]!
  return sum / (ids.length - 1)
}
