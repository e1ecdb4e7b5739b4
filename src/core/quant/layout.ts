/**
 * How encoded tensors are laid out as named safetensors tensors, and how to
 * find and read them back.
 *
 * nf4, as transformers + bitsandbytes serialize a `Linear4bit` (for a weight named `W`):
 *   W                                   U8  [ceil(n/2), 1]   packed codes, first element in the high nibble
 *   W.absmax                            F32 [blocks]          (U8 [blocks] with double quantization)
 *   W.quant_map                         F32 [16]              the NF4 code book
 *   W.nested_absmax                     F32 [ceil(blocks/256)] double quantization only
 *   W.nested_quant_map                  F32 [256]             double quantization only
 *   W.quant_state.bitsandbytes__nf4     U8  [len]             JSON: quant_type, blocksize, dtype, shape
 *                                                             (+ nested_blocksize, nested_dtype, nested_offset)
 * int4, for a weight `M.weight` (module `M`):
 *   M.qweight U8 [rows, cols/2] · M.scales F16 [rows, cols/g] · M.zeros U8 [rows, cols/g]
 */
import {InputError} from '../errors.js'
import type {DType} from '../dtype.js'
import {bytesOf, toFloat32, typedView} from '../dtype.js'
import type {TensorSpec} from '../formats/safetensors-header.js'
import {sanitizeName} from '../formats/safetensors-header.js'
import type {TensorSource} from '../formats/tensor-source.js'
import {formatShape} from '../shape.js'
import {NF4_BLOCK_SIZES, NF4_CODE, NF4_NESTED_BLOCK_SIZE} from './nf4.js'
import type {EncodedTensor, QuantOptions, QuantSchemeName} from './schemes.js'

export const NF4_STATE_SUFFIX = '.quant_state.bitsandbytes__nf4'
/** Room reserved in the quant-state JSON for `nested_offset` (the longest JavaScript number text). */
const OFFSET_TEXT_RESERVE = 24

const TORCH_DTYPES: Readonly<Record<string, DType>> = Object.freeze({float16: 'F16', bfloat16: 'BF16', float32: 'F32'})

/** `F16` → `float16` (torch's name, as bitsandbytes writes `dtype`). */
export function torchDtype(dtype: DType): string {
  return ({F16: 'float16', BF16: 'bfloat16', F32: 'float32'} as Record<string, string>)[dtype] ?? 'float32'
}

/** int4 keeps the module name: `x.q_proj.weight` → `x.q_proj`. */
export function int4Module(name: string): string {
  return name.endsWith('.weight') ? name.slice(0, -'.weight'.length) : name
}

function nf4StateJson(shape: readonly number[], blockSize: number, dtype: DType, offsetText?: string): string {
  const base = `{"quant_type": "nf4", "blocksize": ${blockSize}, "dtype": "${torchDtype(dtype)}", "shape": [${shape.join(', ')}]`
  return offsetText === undefined ? `${base}}` : `${base}, "nested_blocksize": ${NF4_NESTED_BLOCK_SIZE}, "nested_dtype": "float32", "nested_offset": ${offsetText}}`
}

function nf4StateBytes(shape: readonly number[], options: QuantOptions, dtype: DType): number {
  return options.doubleQuant ? nf4StateJson(shape, options.blockSize, dtype, '0'.repeat(OFFSET_TEXT_RESERVE)).length : nf4StateJson(shape, options.blockSize, dtype).length
}

/**
 * The stored tensors that will hold weight `name` [rows, cols] encoded with
 * `options` (safetensors schemes only), with exact sizes, before encoding.
 * @param dtype the float dtype the weight had (recorded in the nf4 quant state)
 */
export function plannedParts(name: string, shape: readonly [number, number], options: QuantOptions, dtype: DType): TensorSpec[] {
  const [rows, cols] = shape
  const n = rows * cols
  switch (options.scheme) {
    case 'nf4': {
      const blocks = Math.ceil(n / options.blockSize)
      const specs: TensorSpec[] = [
        {name, dtype: 'U8', shape: [Math.ceil(n / 2), 1]},
        {name: `${name}.absmax`, dtype: options.doubleQuant ? 'U8' : 'F32', shape: [blocks]},
        {name: `${name}.quant_map`, dtype: 'F32', shape: [16]},
      ]
      if (options.doubleQuant) {
        specs.push({name: `${name}.nested_absmax`, dtype: 'F32', shape: [Math.ceil(blocks / NF4_NESTED_BLOCK_SIZE)]}, {name: `${name}.nested_quant_map`, dtype: 'F32', shape: [256]})
      }
      specs.push({name: `${name}${NF4_STATE_SUFFIX}`, dtype: 'U8', shape: [nf4StateBytes(shape, options, dtype)]})
      return specs
    }
    case 'int4': {
      const m = int4Module(name)
      return [
        {name: `${m}.qweight`, dtype: 'U8', shape: [rows, cols / 2]},
        {name: `${m}.scales`, dtype: 'F16', shape: [rows, cols / options.blockSize]},
        {name: `${m}.zeros`, dtype: 'U8', shape: [rows, cols / options.blockSize]},
      ]
    }
    case 'q4_0':
      throw new RangeError('q4_0 is stored in GGUF, not in safetensors parts')
  }
}

/** The bytes of each planned part, in `plannedParts` order. */
export function encodedParts(name: string, encoded: EncodedTensor, dtype: DType): Array<{name: string; data: Uint8Array}> {
  switch (encoded.scheme) {
    case 'nf4': {
      const e = encoded.nf4
      const parts = [
        {name, data: e.packed},
        {name: `${name}.absmax`, data: e.nested ? e.nested.codes : bytesOf(e.absmax)},
        {name: `${name}.quant_map`, data: bytesOf(Float32Array.from(NF4_CODE))},
      ]
      if (e.nested) parts.push({name: `${name}.nested_absmax`, data: bytesOf(e.nested.nestedAbsmax)}, {name: `${name}.nested_quant_map`, data: bytesOf(e.nested.code)})
      let json = nf4StateJson(encoded.shape, e.blockSize, dtype, e.nested ? String(e.nested.offset) : undefined)
      if (e.nested) json = json.padEnd(nf4StateJson(encoded.shape, e.blockSize, dtype, '0'.repeat(OFFSET_TEXT_RESERVE)).length, ' ')
      parts.push({name: `${name}${NF4_STATE_SUFFIX}`, data: new TextEncoder().encode(json)})
      return parts
    }
    case 'int4': {
      const m = int4Module(name)
      return [
        {name: `${m}.qweight`, data: encoded.int4.qweight},
        {name: `${m}.scales`, data: bytesOf(encoded.int4.scales)},
        {name: `${m}.zeros`, data: encoded.int4.zeros},
      ]
    }
    case 'q4_0':
      throw new RangeError('q4_0 is stored in GGUF, not in safetensors parts')
  }
}

/** A weight stored in an nf4 or int4 layout inside a safetensors model. */
export interface StoredQuantTensor {
  /** The weight's name (`….q_proj.weight`). */
  readonly name: string
  readonly scheme: Exclude<QuantSchemeName, 'q4_0'>
  readonly shape: readonly [number, number]
  /** The float dtype the weight had. */
  readonly dtype: DType
  readonly blockSize: number
  readonly doubleQuant: boolean
  /** The stored tensors that make it up. */
  readonly parts: readonly string[]
}

function bad(source: TensorSource, code: string, problem: string): InputError {
  return new InputError(code, `read ${source.path}: ${problem}`)
}

/**
 * Find the nf4 and int4 weights among a model's tensors (headers and the small
 * quant-state tensors only).
 * @throws InputError for a bitsandbytes fp4 state, an unreadable or inconsistent quant state, or int4 parts of the wrong dtype or shape
 */
export async function findQuantizedTensors(source: TensorSource, metadata: ReadonlyMap<string, string>): Promise<Map<string, StoredQuantTensor>> {
  const found = new Map<string, StoredQuantTensor>()
  for (const name of source.tensors.keys()) {
    if (/\.quant_state\.bitsandbytes__[a-z0-9]+$/.test(name) && !name.endsWith(NF4_STATE_SUFFIX)) {
      throw bad(source, 'QUANT_UNSUPPORTED', `tensor "${sanitizeName(name)}" holds a bitsandbytes ${name.split('__').pop()} quant state; only nf4 is read`)
    }
    if (name.endsWith(NF4_STATE_SUFFIX)) {
      const weight = name.slice(0, -NF4_STATE_SUFFIX.length)
      found.set(weight, await readNf4State(source, weight, name))
    } else if (name.endsWith('.qweight')) {
      const m = name.slice(0, -'.qweight'.length)
      found.set(`${m}.weight`, int4Parts(source, m, metadata))
    }
  }
  return found
}

async function readNf4State(source: TensorSource, weight: string, stateName: string): Promise<StoredQuantTensor> {
  const where = `nf4 weight "${sanitizeName(weight)}"`
  const stateInfo = source.tensors.get(stateName)!
  if (stateInfo.dtype !== 'U8' || stateInfo.byteLength > 65536) throw bad(source, 'QUANT_BAD_STATE', `${where}: quant state is not a small U8 tensor`)
  let state: Record<string, unknown>
  try {
    state = JSON.parse(new TextDecoder('utf-8', {fatal: true}).decode(await source.readBytes(stateName))) as Record<string, unknown>
  } catch {
    throw bad(source, 'QUANT_BAD_STATE', `${where}: quant state is not UTF-8 JSON`)
  }
  const shape = state.shape
  const blockSize = state.blocksize
  const dtype = TORCH_DTYPES[String(state.dtype)]
  if (state.quant_type !== 'nf4') throw bad(source, 'QUANT_BAD_STATE', `${where}: quant_type is ${JSON.stringify(state.quant_type)}, expected "nf4"`)
  if (!Array.isArray(shape) || shape.length !== 2 || !shape.every((d) => Number.isSafeInteger(d) && d >= 0)) {
    throw bad(source, 'QUANT_BAD_STATE', `${where}: quant state shape ${JSON.stringify(shape)} is not a 2-D shape`)
  }
  if (typeof blockSize !== 'number' || !NF4_BLOCK_SIZES.includes(blockSize)) throw bad(source, 'QUANT_BAD_STATE', `${where}: blocksize ${JSON.stringify(blockSize)} is not a bitsandbytes block size`)
  if (!dtype) throw bad(source, 'QUANT_BAD_STATE', `${where}: dtype ${JSON.stringify(state.dtype)} is not float16, bfloat16 or float32`)
  const nested = 'nested_offset' in state
  if (nested && (state.nested_blocksize !== NF4_NESTED_BLOCK_SIZE || typeof state.nested_offset !== 'number')) {
    throw bad(source, 'QUANT_BAD_STATE', `${where}: nested_blocksize must be ${NF4_NESTED_BLOCK_SIZE} with a numeric nested_offset`)
  }
  const [rows, cols] = shape as [number, number]
  const n = rows * cols
  const blocks = Math.ceil(n / blockSize)
  const expect: Array<[string, DType, number[]]> = [
    [weight, 'U8', [Math.ceil(n / 2), 1]],
    [`${weight}.absmax`, nested ? 'U8' : 'F32', [blocks]],
    [`${weight}.quant_map`, 'F32', [16]],
  ]
  if (nested) expect.push([`${weight}.nested_absmax`, 'F32', [Math.ceil(blocks / NF4_NESTED_BLOCK_SIZE)]], [`${weight}.nested_quant_map`, 'F32', [256]])
  for (const [part, dt, sh] of expect) {
    const info = source.tensors.get(part)
    if (!info) throw bad(source, 'QUANT_MISSING_PART', `${where}: tensor "${sanitizeName(part)}" is missing`)
    const okShape = info.elementCount === sh.reduce((a, b) => a * b, 1)
    if (info.dtype !== dt || !okShape) {
      throw bad(source, 'QUANT_BAD_PART', `tensor "${sanitizeName(part)}" is ${info.dtype} ${formatShape(info.shape)}, expected ${dt} ${formatShape(sh)} for an nf4 weight of shape ${formatShape(shape as number[])}`)
    }
  }
  return {name: weight, scheme: 'nf4', shape: [rows, cols], dtype, blockSize, doubleQuant: nested, parts: [...expect.map((e) => e[0]), stateName]}
}

function int4Parts(source: TensorSource, m: string, metadata: ReadonlyMap<string, string>): StoredQuantTensor {
  const q = source.tensors.get(`${m}.qweight`)!
  const s = source.tensors.get(`${m}.scales`)
  const z = source.tensors.get(`${m}.zeros`)
  const where = `int4 weight "${sanitizeName(m)}"`
  if (!s || !z) throw bad(source, 'QUANT_MISSING_PART', `${where}: ${m}.qweight needs ${m}.scales and ${m}.zeros (GPTQ/AWQ checkpoints with qzeros are not read)`)
  if (q.dtype !== 'U8' || s.dtype !== 'F16' || z.dtype !== 'U8' || q.shape.length !== 2 || s.shape.length !== 2 || z.shape.length !== 2) {
    throw bad(source, 'QUANT_BAD_PART', `${where}: expected qweight U8, scales F16, zeros U8, all 2-D (got ${q.dtype} ${formatShape(q.shape)}, ${s.dtype} ${formatShape(s.shape)}, ${z.dtype} ${formatShape(z.shape)})`)
  }
  const [rows, half] = q.shape as [number, number]
  const groups = s.shape[1]!
  const cols = half * 2
  if (s.shape[0] !== rows || z.shape[0] !== rows || z.shape[1] !== groups || groups === 0 || cols % groups !== 0 || (cols / groups) % 2 !== 0) {
    throw bad(source, 'QUANT_BAD_PART', `${where}: qweight ${formatShape(q.shape)}, scales ${formatShape(s.shape)} and zeros ${formatShape(z.shape)} do not describe one [rows, cols] weight in groups`)
  }
  const dtype = (metadata.get('lora.dtype') as DType | undefined) ?? 'F16'
  return {name: `${m}.weight`, scheme: 'int4', shape: [rows, cols], dtype: ['F16', 'BF16', 'F32'].includes(dtype) ? dtype : 'F16', blockSize: cols / groups, doubleQuant: false, parts: [`${m}.qweight`, `${m}.scales`, `${m}.zeros`]}
}

/** Read every part of a stored weight into an encoded tensor. */
export async function readStoredQuant(source: TensorSource, t: StoredQuantTensor): Promise<EncodedTensor> {
  const [rows, cols] = t.shape
  if (t.scheme === 'int4') {
    const m = int4Module(t.name)
    return {
      scheme: 'int4',
      shape: t.shape,
      int4: {
        rows,
        cols,
        groupSize: t.blockSize,
        qweight: await source.readBytes(`${m}.qweight`),
        scales: typedView('F16', await source.readBytes(`${m}.scales`)) as Uint16Array,
        zeros: await source.readBytes(`${m}.zeros`),
      },
    }
  }
  const w = t.name
  const quantMap = toFloat32('F32', await source.readBytes(`${w}.quant_map`))
  const packed = await source.readBytes(w)
  const count = rows * cols
  if (!t.doubleQuant) {
    const absmax = toFloat32('F32', await source.readBytes(`${w}.absmax`))
    return {scheme: 'nf4', shape: t.shape, nf4: {count, blockSize: t.blockSize, packed, absmax, quantMap}}
  }
  const state = JSON.parse(new TextDecoder().decode(await source.readBytes(`${w}${NF4_STATE_SUFFIX}`))) as {nested_offset: number}
  const nested = {
    codes: await source.readBytes(`${w}.absmax`),
    nestedAbsmax: toFloat32('F32', await source.readBytes(`${w}.nested_absmax`)),
    offset: Math.fround(state.nested_offset),
    code: toFloat32('F32', await source.readBytes(`${w}.nested_quant_map`)),
  }
  return {scheme: 'nf4', shape: t.shape, nf4: {count, blockSize: t.blockSize, packed, absmax: new Float32Array(0), nested, quantMap}}
}
