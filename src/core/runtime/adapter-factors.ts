/**
 * LoRA adapters as the runtime uses them: per module, A `[r, in]`, B
 * `[out, r]` in float32 and the scaling s (alpha / r, or alpha / √r with
 * rsLoRA, after rank_pattern / alpha_pattern), read from a PEFT folder or
 * from one adapter of a `lora-pack` file, and checked against the decoder:
 * every module must be one of its projections with the same shape.
 */
import {InputError} from '../errors.js'
import {LoraAdapter} from '../formats/peft-adapter.js'
import {sanitizeName} from '../formats/safetensors-header.js'
import {ALL_PROJECTIONS, Projection, projectionPath} from '../models/llama.js'
import {PackFile} from '../formats/pack-file.js'
import type {DecoderConfig} from './decoder-config.js'

/** One adapted module. */
export interface ModuleFactors {
  readonly r: number
  readonly scaling: number
  /** float32 `[r, in]`. */
  readonly a: Float32Array
  /** float32 `[out, r]`. */
  readonly b: Float32Array
  readonly in: number
  readonly out: number
}

/** One adapter's factors by module, float32. */
export interface AdapterFactors {
  /** The adapter's name (folder name or pack entry). */
  readonly name: string
  /** Where it was read from. */
  readonly source: string
  /** Modules by path (`model.layers.0.self_attn.q_proj`). */
  readonly modules: ReadonlyMap<string, ModuleFactors>
}

/** An adapter and the weight w its product is multiplied by (ΔW = w · s · B · A). */
export interface WeightedAdapter {
  readonly adapter: AdapterFactors
  readonly weight: number
}

/**
 * Read a PEFT LoRA folder.
 * @throws InputError for unreadable folders (see `LoraAdapter.load`), embedding LoRA, or `fan_in_fan_out` adapters
 */
export async function readPeftFactors(dir: string): Promise<AdapterFactors> {
  const adapter = await LoraAdapter.load(dir)
  try {
    if (adapter.config.fanInFanOut) throw new InputError('ADAPTER_FAN_IN_FAN_OUT', `read adapter ${dir}: fan_in_fan_out is set (a Conv1D model's adapter); Llama-family projections are nn.Linear`)
    const modules = new Map<string, ModuleFactors>()
    for (const m of adapter.modules.values()) {
      if (m.kind !== 'linear') throw new InputError('ADAPTER_UNSUPPORTED_LAYER', `read adapter ${dir}: module "${sanitizeName(m.name)}" is an embedding LoRA, which the decoder runtime does not apply`)
      const a = (await adapter.readA(m.name)).toFloat32()
      const b = (await adapter.readB(m.name)).toFloat32()
      modules.set(m.name, {r: m.r, scaling: m.scaling, a: Float32Array.from(a), b: Float32Array.from(b), in: m.in, out: m.out})
    }
    return {name: adapter.name, source: adapter.dir, modules}
  } finally {
    await adapter.close()
  }
}

/**
 * Read adapter `name` of a `lora-pack` file, cut back to its own ranks.
 * @throws InputError for a file that is not a pack or has no such adapter
 */
export async function readPackFactors(path: string, name: string): Promise<AdapterFactors> {
  const pack = await PackFile.open(path)
  try {
    await pack.checkNullSlot()
    const entry = pack.adapterByName(name)
    const modules = new Map<string, ModuleFactors>()
    for (const m of entry.modules) {
      const module = pack.module(m.name)
      if (module.kind !== 'linear') throw new InputError('ADAPTER_UNSUPPORTED_LAYER', `read ${path}: module "${sanitizeName(m.name)}" is an embedding LoRA, which the decoder runtime does not apply`)
      if (module.fan_in_fan_out) throw new InputError('ADAPTER_FAN_IN_FAN_OUT', `read ${path}: module "${sanitizeName(m.name)}" is fan_in_fan_out (a Conv1D model's); Llama-family projections are nn.Linear`)
      const block = (await pack.readSlot(m.name, entry.slot))!
      modules.set(m.name, {r: block.r, scaling: block.scaling, a: Float32Array.from(block.a.toFloat32()), b: Float32Array.from(block.b.toFloat32()), in: module.in, out: module.out})
    }
    return {name: entry.name, source: path, modules}
  } finally {
    await pack.close()
  }
}

/** `[out, in]` of each projection of a decoder. */
export function projectionShapeOf(config: DecoderConfig, projection: Projection): [out: number, inDim: number] {
  const q = config.heads * config.headDim
  const kv = config.kvHeads * config.headDim
  switch (projection) {
    case 'q_proj':
      return [q, config.hidden]
    case 'k_proj':
    case 'v_proj':
      return [kv, config.hidden]
    case 'o_proj':
      return [config.hidden, q]
    case 'gate_proj':
    case 'up_proj':
      return [config.intermediate, config.hidden]
    case 'down_proj':
      return [config.hidden, config.intermediate]
  }
}

/**
 * Check that every module of `adapter` is a projection of the decoder with
 * the same `[out, in]`.
 * @throws InputError naming the adapter and the first module that does not fit
 */
export function checkAdapterFits(adapter: AdapterFactors, config: DecoderConfig): void {
  checkModulesFit(adapter.source, [...adapter.modules].map(([name, m]) => ({name, in: m.in, out: m.out})), config)
}

/**
 * Check that adapter modules (from `source`) are projections of the decoder
 * with the same `[out, in]`.
 * @throws InputError naming the source and the first module that does not fit
 */
export function checkModulesFit(source: string, modules: Iterable<{name: string; in: number; out: number}>, config: DecoderConfig): void {
  const shapes = new Map<string, [number, number]>()
  for (let layer = 0; layer < config.layers; layer++) for (const p of ALL_PROJECTIONS) shapes.set(projectionPath(layer, p), projectionShapeOf(config, p))
  for (const m of modules) {
    const shape = shapes.get(m.name)
    if (!shape) throw new InputError('ADAPTER_MODULE_MISMATCH', `adapter ${source}: module "${sanitizeName(m.name)}" is not a projection of this ${config.layers}-layer decoder`)
    if (shape[0] !== m.out || shape[1] !== m.in) {
      throw new InputError('ADAPTER_MODULE_MISMATCH', `adapter ${source}: module "${sanitizeName(m.name)}" is [${m.out}, ${m.in}] but the base's weight is [${shape[0]}, ${shape[1]}]`)
    }
  }
}
