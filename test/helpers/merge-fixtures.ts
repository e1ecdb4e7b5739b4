/**
 * Small models and adapters built in code for the merge and quantize tests,
 * and float64 reference computations written independently of src/.
 */
import {mkdirSync, writeFileSync} from 'node:fs'
import {join} from 'node:path'
import {DType, fromFloat} from '../../src/core/dtype.js'
import {loraKeys, peftLoraConfig, writeAdapter} from '../../src/core/formats/peft-adapter-writer.js'
import {writeSafetensors} from '../../src/core/formats/safetensors-writer.js'
import {Rng} from '../../src/core/random.js'

export interface FixtureTensor {
  name: string
  shape: number[]
  dtype?: DType
  values: Float64Array
}

/** N(0, std²) values from a named stream. */
export function normal(count: number, std: number, ...labels: Array<string | number>): Float64Array {
  return new Rng(11, ...labels).fillNormal(new Float64Array(count), std)
}

/** Write a base model folder: one model.safetensors, or shards (lists of tensor names) with an index; config.json. */
export async function writeBase(dir: string, tensors: FixtureTensor[], options: {shards?: string[][]; config?: Record<string, unknown>} = {}): Promise<void> {
  mkdirSync(dir, {recursive: true})
  const spec = (t: FixtureTensor) => ({name: t.name, dtype: t.dtype ?? 'F32', shape: t.shape, data: fromFloat(t.dtype ?? 'F32', t.values)})
  if (!options.shards) await writeSafetensors(join(dir, 'model.safetensors'), tensors.map(spec), {metadata: {format: 'pt'}})
  else {
    const weightMap: Record<string, string> = {}
    for (const [i, names] of options.shards.entries()) {
      const file = `model-${String(i + 1).padStart(5, '0')}-of-${String(options.shards.length).padStart(5, '0')}.safetensors`
      await writeSafetensors(join(dir, file), tensors.filter((t) => names.includes(t.name)).map(spec), {metadata: {format: 'pt'}})
      for (const n of names) weightMap[n] = file
    }
    writeFileSync(join(dir, 'model.safetensors.index.json'), JSON.stringify({metadata: {total_size: 0}, weight_map: weightMap}))
  }
  writeFileSync(join(dir, 'config.json'), JSON.stringify(options.config ?? {model_type: 'llama', torch_dtype: 'float32'}))
}

export interface FixtureModule {
  name: string
  in: number
  out: number
  a: Float64Array
  b: Float64Array
}

/** Random A [r, in], B [out, r] for a module. */
export function randomModule(name: string, inF: number, outF: number, r: number, seed: string | number, bStd = 0.05): FixtureModule {
  return {name, in: inF, out: outF, a: normal(r * inF, 1 / Math.sqrt(inF), 'A', seed, name), b: normal(outF * r, bStd, 'B', seed, name)}
}

/** Write a PEFT adapter folder. */
export async function writeLora(dir: string, modules: FixtureModule[], options: {r: number; alpha: number; fanInFanOut?: boolean; dtype?: DType}): Promise<void> {
  const dtype = options.dtype ?? 'F32'
  const tensors = modules.flatMap((m) => {
    const [ka, kb] = loraKeys(m.name)
    return [
      {name: ka, dtype, shape: [options.r, m.in], data: fromFloat(dtype, m.a)},
      {name: kb, dtype, shape: [m.out, options.r], data: fromFloat(dtype, m.b)},
    ]
  })
  const targets = [...new Set(modules.map((m) => m.name.split('.').pop()!))]
  await writeAdapter(dir, peftLoraConfig({r: options.r, lora_alpha: options.alpha, target_modules: targets, fan_in_fan_out: options.fanInFanOut ?? false}), tensors)
}

/** Values as stored in `dtype` and read back (what the merge sees). */
export function stored(values: Float64Array, dtype: DType = 'F32'): Float64Array {
  if (dtype === 'F64') return values
  const bytes = fromFloat(dtype, values)
  if (dtype === 'F32') return Float64Array.from(new Float32Array(bytes.buffer, bytes.byteOffset, values.length))
  const bits = new Uint16Array(bytes.buffer, bytes.byteOffset, values.length)
  const out = new Float64Array(values.length)
  for (let i = 0; i < bits.length; i++) {
    if (dtype === 'BF16') out[i] = new Float32Array(new Uint32Array([bits[i]! << 16]).buffer)[0]!
    else {
      const h = bits[i]!
      const e = (h >> 10) & 31
      const m = h & 1023
      const v = e === 0 ? m * 2 ** -24 : (1 + m / 1024) * 2 ** (e - 15)
      out[i] = h & 0x8000 ? -v : v
    }
  }
  return out
}

/** float64 reference: W + Σ scale_k · B_k A_k ([out, in]) or its transpose (base [in, out]). */
export function referenceMerge(w: Float64Array, terms: Array<{a: Float64Array; b: Float64Array; r: number; in: number; out: number; scale: number}>, transposed: boolean): Float64Array {
  const out = Float64Array.from(w)
  for (const t of terms) {
    for (let o = 0; o < t.out; o++) {
      for (let i = 0; i < t.in; i++) {
        let s = 0
        for (let k = 0; k < t.r; k++) s += t.b[o * t.r + k]! * t.a[k * t.in + i]!
        if (transposed) out[i * t.out + o]! += t.scale * s
        else out[o * t.in + i]! += t.scale * s
      }
    }
  }
  return out
}

export {mkdirSync}
