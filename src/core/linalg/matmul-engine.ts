/**
 * Large matrix products on onnxruntime-node's CPU MatMul (MLAS: blocked,
 * vectorized, multi-threaded), small ones in plain TypeScript.
 *
 * Measured on the 2-core development machine (`bench/compress.ts` prints the
 * figures of the machine it runs on): a [2048, 4096] @ [4096, 48] product
 * runs at about 27 GFLOP/s in float32 and 9 GFLOP/s in float64 on ORT,
 * against about 0.5 GFLOP/s for a plain float64 TypeScript loop, so every
 * product above `TS_MAX_FLOPS` goes to ORT.
 *
 * onnxruntime is imported lazily, on the first large product, so commands
 * that never multiply big matrices do not pay for loading it.
 */
import {availableParallelism} from 'node:os'
import {matmul as matmulTs, matmulTransposeA as matmulTransposeATs, transpose} from './dense.js'

/** Element type of a product; both operands and the result have it. */
export type Precision = 'float32' | 'float64'

export type FloatArray = Float32Array | Float64Array

export interface MatMulOptions {
  /** Use the operand transposed: `a` is stored `[..., k, m]` and read as `[..., m, k]`. */
  transposeA?: boolean
  /** `b` is stored `[..., n, k]` and read as `[..., k, n]`. */
  transposeB?: boolean
}

/** Products with fewer flops than this (2·m·k·n·batch) run in TypeScript: an ORT call costs ~0.1–0.3 ms. */
export const TS_MAX_FLOPS = 2e5

type Ort = typeof import('onnxruntime-node')
type OrtSession = import('onnxruntime-node').InferenceSession

/**
 * `a @ b` with numpy broadcasting over one optional leading batch dimension:
 * `[m, k] @ [k, n]`, `[B, m, k] @ [B, k, n]`, `[m, k] @ [B, k, n]`, `[B, m, k] @ [k, n]`.
 */
export class MatMulEngine {
  private ort: Promise<Ort> | undefined
  private readonly sessions = new Map<string, Promise<OrtSession>>()

  /** @param threads intra-op threads for ORT (default: every available core) */
  constructor(readonly threads: number = availableParallelism()) {}

  /**
   * The product in the operands' precision (both must be Float32Array or both Float64Array).
   * @param aDims the stored dims of `a` (before `transposeA`)
   * @param bDims the stored dims of `b` (before `transposeB`)
   * @throws RangeError for sizes that do not match their dims or inner dimensions that differ
   */
  async matmul<T extends FloatArray>(a: T, aDims: readonly number[], b: T, bDims: readonly number[], options: MatMulOptions = {}): Promise<T> {
    const precision: Precision = a instanceof Float64Array ? 'float64' : 'float32'
    if ((b instanceof Float64Array) !== (precision === 'float64')) throw new RangeError('matmul operands must have the same precision')
    const sa = shapeOf(aDims, a.length, 'a', options.transposeA)
    const sb = shapeOf(bDims, b.length, 'b', options.transposeB)
    if (sa.cols !== sb.rows) throw new RangeError(`matmul inner dimensions differ: [${sa.rows}, ${sa.cols}] @ [${sb.rows}, ${sb.cols}]`)
    if (sa.batch !== undefined && sb.batch !== undefined && sa.batch !== sb.batch) throw new RangeError(`matmul batch sizes differ (${sa.batch} vs ${sb.batch})`)
    const batch = sa.batch ?? sb.batch
    const flops = 2 * sa.rows * sa.cols * sb.cols * (batch ?? 1)
    if (flops < TS_MAX_FLOPS) return this.matmulSmall(a, sa, b, sb, batch, options) as T
    const ort = await this.loadOrt()
    const key = `${precision}:${aDims.length}:${bDims.length}:${options.transposeA ? 1 : 0}:${options.transposeB ? 1 : 0}`
    let session = this.sessions.get(key)
    if (!session) {
      session = buildSession(ort, precision, aDims.length, bDims.length, Boolean(options.transposeA), Boolean(options.transposeB), this.threads)
      this.sessions.set(key, session)
    }
    const s = await session
    const out = await s.run({a: new ort.Tensor(precision, a, [...aDims]), b: new ort.Tensor(precision, b, [...bDims])})
    const c = out.c!.data as T
    return c
  }

  /** Release the ORT sessions (the engine can still be used: they are rebuilt on demand). */
  async release(): Promise<void> {
    const sessions = [...this.sessions.values()]
    this.sessions.clear()
    for (const s of sessions) await (await s).release()
  }

  private loadOrt(): Promise<Ort> {
    this.ort ??= import('onnxruntime-node').then((m) => ((m as unknown as {default?: Ort}).default ?? m) as Ort)
    return this.ort
  }

  private matmulSmall(a: FloatArray, sa: Shape, b: FloatArray, sb: Shape, batch: number | undefined, options: MatMulOptions): FloatArray {
    const m = sa.rows
    const k = sa.cols
    const n = sb.cols
    const count = batch ?? 1
    const out = a instanceof Float64Array ? new Float64Array(count * m * n) : new Float32Array(count * m * n)
    for (let t = 0; t < count; t++) {
      const ablock = a.subarray(sa.batch === undefined ? 0 : t * m * k, sa.batch === undefined ? m * k : (t + 1) * m * k)
      const bblock = b.subarray(sb.batch === undefined ? 0 : t * k * n, sb.batch === undefined ? k * n : (t + 1) * k * n)
      const bb = options.transposeB ? transpose(bblock, n, k) : bblock
      const c = options.transposeA ? matmulTransposeATs(ablock, k, m, bb, n) : matmulTs(ablock, m, k, bb, n)
      out.set(c, t * m * n)
    }
    return out
  }
}

interface Shape {
  batch: number | undefined
  /** Logical rows and columns after any transposition. */
  rows: number
  cols: number
}

function shapeOf(dims: readonly number[], length: number, name: string, transposed = false): Shape {
  if (dims.length !== 2 && dims.length !== 3) throw new RangeError(`matmul operand ${name} must be 2-D or 3-D (got [${dims.join(', ')}])`)
  const size = dims.reduce((p, d) => p * d, 1)
  if (size !== length) throw new RangeError(`matmul operand ${name} has ${length} elements but dims [${dims.join(', ')}] hold ${size}`)
  const batch = dims.length === 3 ? dims[0] : undefined
  const r = dims[dims.length - 2]!
  const c = dims[dims.length - 1]!
  return transposed ? {batch, rows: c, cols: r} : {batch, rows: r, cols: c}
}

async function buildSession(ort: Ort, precision: Precision, rankA: number, rankB: number, transposeA: boolean, transposeB: boolean, threads: number): Promise<OrtSession> {
  const onnxModule = await import('onnx-proto')
  const {onnx} = ((onnxModule as unknown as {default?: typeof onnxModule}).default ?? onnxModule) as typeof onnxModule
  const elemType = precision === 'float64' ? onnx.TensorProto.DataType.DOUBLE : onnx.TensorProto.DataType.FLOAT
  const input = (name: string, rank: number) =>
    onnx.ValueInfoProto.create({
      name,
      type: {tensorType: {elemType, shape: {dim: Array.from({length: rank}, (_, i) => ({dimParam: `${name}${i}`}))}}},
    })
  const nodes: InstanceType<typeof onnx.NodeProto>[] = []
  const transposed = (name: string, rank: number) => {
    const perm = rank === 3 ? [0, 2, 1] : [1, 0]
    nodes.push(
      onnx.NodeProto.create({
        opType: 'Transpose',
        input: [name],
        output: [`${name}_t`],
        attribute: [onnx.AttributeProto.create({name: 'perm', type: onnx.AttributeProto.AttributeType.INTS, ints: perm})],
      }),
    )
    return `${name}_t`
  }
  const left = transposeA ? transposed('a', rankA) : 'a'
  const right = transposeB ? transposed('b', rankB) : 'b'
  nodes.push(onnx.NodeProto.create({opType: 'MatMul', input: [left, right], output: ['c']}))
  const outRank = Math.max(rankA, rankB)
  const graph = onnx.GraphProto.create({
    name: 'matmul',
    node: nodes,
    input: [input('a', rankA), input('b', rankB)],
    output: [onnx.ValueInfoProto.create({name: 'c', type: {tensorType: {elemType, shape: {dim: Array.from({length: outRank}, (_, i) => ({dimParam: `c${i}`}))}}}})],
  })
  const model = onnx.ModelProto.create({irVersion: 8, opsetImport: [{domain: '', version: 17}], graph})
  const bytes = onnx.ModelProto.encode(model).finish()
  // No spinning: between products the JavaScript thread converts and reorganizes data, and pool
  // threads spinning meanwhile take its core (measured here: a module's basis and stored values
  // 1.2 + 0.4 s without spinning, 1.9 + 1.1 s with it, on 2 shared cores).
  return ort.InferenceSession.create(bytes, {
    intraOpNumThreads: threads,
    interOpNumThreads: 1,
    graphOptimizationLevel: 'all',
    executionProviders: ['cpu'],
    extra: {session: {intra_op: {allow_spinning: '0'}}},
  })
}
