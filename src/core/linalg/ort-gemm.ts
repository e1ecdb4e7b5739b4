/**
 * Dense matrix products on onnxruntime's CPU provider (MLAS for float32,
 * Eigen for float64, both multi-threaded): `Y = op(A) · op(B) + C`, with
 * op = identity or transpose. One ONNX `Gemm` graph per (dtype, transA,
 * transB, with C) is built once and its session kept; shapes are symbolic,
 * so any sizes reuse it. onnxruntime is imported on first use, so commands
 * that never multiply do not pay for loading it.
 */
import type {InferenceSession, Tensor as OrtTensor} from 'onnxruntime-node'

export type GemmArray = Float32Array | Float64Array

export interface GemmOptions {
  /** Use Aᵀ: `a` is stored [k, m]. */
  transA?: boolean
  /** Use Bᵀ: `b` is stored [n, k]. */
  transB?: boolean
}

type Ort = typeof import('onnxruntime-node')
let ortModule: Promise<Ort> | undefined
const sessions = new Map<string, Promise<InferenceSession>>()

async function loadOrt(): Promise<Ort> {
  ortModule ??= import('onnxruntime-node').then((m) => ((m as unknown as {default?: Ort}).default ?? m) as Ort)
  return ortModule
}

/** ONNX TensorProto element types. */
const ELEM = {float32: 1, float16: 10, float64: 11} as const

async function onnxNamespace(): Promise<OnnxNs> {
  const onnxProto = (await import('onnx-proto')) as unknown as {default?: {onnx: OnnxNs}; onnx?: OnnxNs}
  return (onnxProto.onnx ?? onnxProto.default!.onnx)!
}

async function buildModel(dtype: 'float32' | 'float64', transA: boolean, transB: boolean, withC: boolean): Promise<Uint8Array> {
  const onnx = await onnxNamespace()
  const type = (dims: string[]) => ({tensorType: {elemType: ELEM[dtype], shape: {dim: dims.map((d) => ({dimParam: d}))}}})
  const inputs = [
    {name: 'A', type: type(transA ? ['K', 'M'] : ['M', 'K'])},
    {name: 'B', type: type(transB ? ['N', 'K'] : ['K', 'N'])},
    ...(withC ? [{name: 'C', type: type(['M', 'N'])}] : []),
  ]
  const attribute = [
    {name: 'transA', type: 2, i: transA ? 1 : 0},
    {name: 'transB', type: 2, i: transB ? 1 : 0},
  ]
  const graph = {
    name: 'gemm',
    node: [{opType: 'Gemm', input: withC ? ['A', 'B', 'C'] : ['A', 'B'], output: ['Y'], attribute}],
    input: inputs,
    output: [{name: 'Y', type: type(['M', 'N'])}],
  }
  const model = onnx.ModelProto.create({irVersion: 8, opsetImport: [{domain: '', version: 17}], graph})
  return onnx.ModelProto.encode(model).finish()
}

/**
 * `Y16 = f16(A · B + f32(C16))`: the product in float32 (MLAS), C widened and
 * the sum narrowed by `Cast` (round to nearest even, the same bits as
 * `fromFloat('F16', …)`), all inside onnxruntime.
 */
async function buildHalfModel(): Promise<Uint8Array> {
  const onnx = await onnxNamespace()
  const type = (elemType: number, dims: string[]) => ({tensorType: {elemType, shape: {dim: dims.map((d) => ({dimParam: d}))}}})
  const graph = {
    name: 'gemm_f16_c',
    node: [
      {opType: 'Cast', input: ['C16'], output: ['C'], attribute: [{name: 'to', type: 2, i: ELEM.float32}]},
      {opType: 'Gemm', input: ['A', 'B', 'C'], output: ['Y'], attribute: []},
      {opType: 'Cast', input: ['Y'], output: ['Y16'], attribute: [{name: 'to', type: 2, i: ELEM.float16}]},
    ],
    input: [
      {name: 'A', type: type(ELEM.float32, ['M', 'K'])},
      {name: 'B', type: type(ELEM.float32, ['K', 'N'])},
      {name: 'C16', type: type(ELEM.float16, ['M', 'N'])},
    ],
    output: [{name: 'Y16', type: type(ELEM.float16, ['M', 'N'])}],
  }
  return onnx.ModelProto.encode(onnx.ModelProto.create({irVersion: 8, opsetImport: [{domain: '', version: 17}], graph})).finish()
}

interface OnnxNs {
  ModelProto: {create(props: unknown): unknown; encode(m: unknown): {finish(): Uint8Array}}
}

async function session(dtype: 'float32' | 'float64' | 'half-c', transA: boolean, transB: boolean, withC: boolean): Promise<InferenceSession> {
  const key = `${dtype}:${transA}:${transB}:${withC}`
  let s = sessions.get(key)
  if (!s) {
    s = (async () => {
      const ort = await loadOrt()
      const model = dtype === 'half-c' ? await buildHalfModel() : await buildModel(dtype, transA, transB, withC)
      // no spinning: idle pool threads would take the CPU from the JavaScript thread converting the next chunk
      return ort.InferenceSession.create(model, {extra: {session: {intra_op: {allow_spinning: '0'}}}})
    })()
    sessions.set(key, s)
  }
  return s
}

/**
 * `A · B + C` with C and the result in binary16 (bits in a Uint16Array),
 * the arithmetic in float32: bit for bit what `fromFloat('F16', gemm(a, b, toFloat32('F16', c)))`
 * gives, without the two conversions in JavaScript.
 * @param a [m, k] float32
 * @param b [k, n] float32
 * @param c16 [m, n] binary16 bits
 */
export async function gemmAddHalf(a: Float32Array, aShape: readonly [number, number], b: Float32Array, bShape: readonly [number, number], c16: Uint16Array): Promise<Uint16Array> {
  const [m, k] = aShape
  const [k2, n] = bShape
  if (k !== k2) throw new RangeError(`gemm: inner dimensions differ (${k} vs ${k2})`)
  if (a.length !== m * k || b.length !== k * n || c16.length !== m * n) throw new RangeError('gemm: an array does not match its shape')
  if (m === 0 || n === 0 || k === 0) return c16.slice()
  const ort = await loadOrt()
  const s = await session('half-c', false, false, true)
  const result = await s.run({A: new ort.Tensor('float32', a, [m, k]), B: new ort.Tensor('float32', b, [k, n]), C16: new ort.Tensor('float16', c16, [m, n])})
  return result.Y16!.data as Uint16Array
}

/**
 * `op(A) · op(B) (+ C)`, all row-major and of one float dtype.
 * @param a [m, k] (or [k, m] with transA)
 * @param b [k, n] (or [n, k] with transB)
 * @param c [m, n], optional
 * @returns Y [m, n], a new array of the inputs' dtype
 */
export async function gemm<T extends GemmArray>(
  a: T,
  aShape: readonly [number, number],
  b: T,
  bShape: readonly [number, number],
  c?: T,
  options: GemmOptions = {},
): Promise<T> {
  const transA = options.transA ?? false
  const transB = options.transB ?? false
  const [m, k] = transA ? [aShape[1], aShape[0]] : aShape
  const [k2, n] = transB ? [bShape[1], bShape[0]] : bShape
  if (k !== k2) throw new RangeError(`gemm: inner dimensions differ (${k} vs ${k2})`)
  if (a.length !== aShape[0] * aShape[1] || b.length !== bShape[0] * bShape[1]) throw new RangeError('gemm: an array does not match its shape')
  if (c && c.length !== m * n) throw new RangeError(`gemm: C has ${c.length} elements, expected ${m * n}`)
  const dtype = a instanceof Float64Array ? 'float64' : 'float32'
  if (m === 0 || n === 0) return (dtype === 'float64' ? new Float64Array(m * n) : new Float32Array(m * n)) as T
  if (k === 0) return (c ? c.slice() : dtype === 'float64' ? new Float64Array(m * n) : new Float32Array(m * n)) as T
  const ort = await loadOrt()
  const s = await session(dtype, transA, transB, c !== undefined)
  const feeds: Record<string, OrtTensor> = {
    A: new ort.Tensor(dtype, a, [...aShape]),
    B: new ort.Tensor(dtype, b, [...bShape]),
  }
  if (c) feeds.C = new ort.Tensor(dtype, c, [m, n])
  const result = await s.run(feeds)
  return result.Y!.data as T
}
