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
const ELEM = {float32: 1, float64: 11} as const

async function buildModel(dtype: 'float32' | 'float64', transA: boolean, transB: boolean, withC: boolean): Promise<Uint8Array> {
  const onnxProto = (await import('onnx-proto')) as unknown as {default?: {onnx: OnnxNs}; onnx?: OnnxNs}
  const onnx = (onnxProto.onnx ?? onnxProto.default!.onnx)!
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

interface OnnxNs {
  ModelProto: {create(props: unknown): unknown; encode(m: unknown): {finish(): Uint8Array}}
}

async function session(dtype: 'float32' | 'float64', transA: boolean, transB: boolean, withC: boolean): Promise<InferenceSession> {
  const key = `${dtype}:${transA}:${transB}:${withC}`
  let s = sessions.get(key)
  if (!s) {
    s = (async () => {
      const ort = await loadOrt()
      // no spinning: idle pool threads would take the CPU from the JavaScript thread converting the next chunk
      return ort.InferenceSession.create(await buildModel(dtype, transA, transB, withC), {extra: {session: {intra_op: {allow_spinning: '0'}}}})
    })()
    sessions.set(key, s)
  }
  return s
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
