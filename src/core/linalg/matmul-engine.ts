/**
 * The one engine for matrix products: large ones on onnxruntime-node's CPU
 * provider (MLAS: blocked, vectorized, multi-threaded; float64 too), small
 * ones in plain TypeScript. Its graphs are built by `product-graphs.ts`
 * (through the graph builder) and its sessions come from the one runtime
 * (`onnx/session.ts`: loader and session policy). One session per graph
 * shape is kept; dimensions are symbolic, so any sizes reuse it.
 *
 * Measured on the 2-core development machine (`bench/compress.ts` prints the
 * figures of the machine it runs on): a [2048, 4096] @ [4096, 48] product
 * runs at about 27 GFLOP/s in float32 and 9 GFLOP/s in float64 on ORT,
 * against about 0.5 GFLOP/s for a plain float64 TypeScript loop, so every
 * `matmul` above `TS_MAX_FLOPS` goes to ORT.
 *
 * onnxruntime and the graph builder are imported lazily, on the first ORT
 * product, so commands that never multiply big matrices do not pay for
 * loading them.
 */
import {availableParallelism} from 'node:os'
import {createSession, loadOrt, type OrtSession, type OrtTensor} from '../onnx/session.js'
import {matmul as matmulTs, matmulTransposeA as matmulTransposeATs, transpose} from './dense.js'
import type {Precision} from './product-graphs.js'

export type {Precision}

/** Operands and results of `matmul`. */
export type FloatArray = Float32Array | Float64Array

/** Operands of `gemm`: both Float32Array or both Float64Array. */
export type GemmArray = FloatArray

/** Transpositions of `matmul`'s operands. */
export interface MatMulOptions {
  /** Use the operand transposed: `a` is stored `[..., k, m]` and read as `[..., m, k]`. */
  transposeA?: boolean
  /** `b` is stored `[..., n, k]` and read as `[..., k, n]`. */
  transposeB?: boolean
}

/** Transpositions of `gemm`'s operands. */
export interface GemmOptions {
  /** Use Aᵀ: `a` is stored [k, m]. */
  transA?: boolean
  /** Use Bᵀ: `b` is stored [n, k]. */
  transB?: boolean
}

/** Products with fewer flops than this (2·m·k·n·batch) run in TypeScript: an ORT call costs ~0.1–0.3 ms. */
export const TS_MAX_FLOPS = 2e5

/**
 * `a @ b` with numpy broadcasting over one optional leading batch dimension:
 * `[m, k] @ [k, n]`, `[B, m, k] @ [B, k, n]`, `[m, k] @ [B, k, n]`, `[B, m, k] @ [k, n]`;
 * and ONNX `Gemm` products (`gemm`, `gemmAddHalf`) that always run on ORT.
 */
export class MatMulEngine {
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
    const transposeA = Boolean(options.transposeA)
    const transposeB = Boolean(options.transposeB)
    const s = await this.session(`matmul:${precision}:${aDims.length}:${bDims.length}:${transposeA ? 1 : 0}:${transposeB ? 1 : 0}`, async (graphs) => graphs.matmulGraph(precision, aDims.length, bDims.length, transposeA, transposeB))
    const ort = await loadOrt()
    const out = await s.run({a: new ort.Tensor(precision, a, [...aDims]), b: new ort.Tensor(precision, b, [...bDims])})
    return out.c!.data as T
  }

  /**
   * `op(A) · op(B) (+ C)` with ONNX `Gemm` (C accumulated inside the product), all row-major and of one float dtype.
   * @param a [m, k] (or [k, m] with transA)
   * @param b [k, n] (or [n, k] with transB)
   * @param c [m, n], optional
   * @returns Y [m, n], a new array of the inputs' dtype
   * @throws RangeError for sizes that do not match their shapes or inner dimensions that differ
   */
  async gemm<T extends GemmArray>(a: T, aShape: readonly [number, number], b: T, bShape: readonly [number, number], c?: T, options: GemmOptions = {}): Promise<T> {
    const transA = options.transA ?? false
    const transB = options.transB ?? false
    const [m, k] = transA ? [aShape[1], aShape[0]] : aShape
    const [k2, n] = transB ? [bShape[1], bShape[0]] : bShape
    if (k !== k2) throw new RangeError(`gemm: inner dimensions differ (${k} vs ${k2})`)
    if (a.length !== aShape[0] * aShape[1] || b.length !== bShape[0] * bShape[1]) throw new RangeError('gemm: an array does not match its shape')
    if (c && c.length !== m * n) throw new RangeError(`gemm: C has ${c.length} elements, expected ${m * n}`)
    const precision: Precision = a instanceof Float64Array ? 'float64' : 'float32'
    if (m === 0 || n === 0) return (precision === 'float64' ? new Float64Array(m * n) : new Float32Array(m * n)) as T
    if (k === 0) return (c ? c.slice() : precision === 'float64' ? new Float64Array(m * n) : new Float32Array(m * n)) as T
    const withC = c !== undefined
    const s = await this.session(`gemm:${precision}:${transA}:${transB}:${withC}`, async (graphs) => graphs.gemmGraph(precision, transA, transB, withC))
    const ort = await loadOrt()
    const feeds: Record<string, OrtTensor> = {
      A: new ort.Tensor(precision, a, [...aShape]),
      B: new ort.Tensor(precision, b, [...bShape]),
    }
    if (c) feeds.C = new ort.Tensor(precision, c, [m, n])
    const result = await s.run(feeds)
    return result.Y!.data as T
  }

  /**
   * `A · B + C` with C and the result in binary16 (bits in a Uint16Array),
   * the arithmetic in float32: bit for bit what `fromFloat('F16', gemm(a, b, toFloat32('F16', c)))`
   * gives, without the two conversions in JavaScript.
   * @param a [m, k] float32
   * @param b [k, n] float32
   * @param c16 [m, n] binary16 bits
   * @throws RangeError for sizes that do not match their shapes or inner dimensions that differ
   */
  async gemmAddHalf(a: Float32Array, aShape: readonly [number, number], b: Float32Array, bShape: readonly [number, number], c16: Uint16Array): Promise<Uint16Array> {
    const [m, k] = aShape
    const [k2, n] = bShape
    if (k !== k2) throw new RangeError(`gemm: inner dimensions differ (${k} vs ${k2})`)
    if (a.length !== m * k || b.length !== k * n || c16.length !== m * n) throw new RangeError('gemm: an array does not match its shape')
    if (m === 0 || n === 0 || k === 0) return c16.slice()
    const s = await this.session('gemm:half-c', async (graphs) => graphs.gemmHalfGraph())
    const ort = await loadOrt()
    const result = await s.run({A: new ort.Tensor('float32', a, [m, k]), B: new ort.Tensor('float32', b, [k, n]), C16: new ort.Tensor('float16', c16, [m, n])})
    return result.Y16!.data as Uint16Array
  }

  /** Release the ORT sessions (the engine can still be used: they are rebuilt on demand). */
  async release(): Promise<void> {
    const sessions = [...this.sessions.values()]
    this.sessions.clear()
    for (const s of sessions) await (await s).release()
  }

  /** The session of the graph `key`, built by `build` the first time (CPU provider, `threads`). */
  private session(key: string, build: (graphs: typeof import('./product-graphs.js')) => Promise<Uint8Array>): Promise<OrtSession> {
    let session = this.sessions.get(key)
    if (!session) {
      session = import('./product-graphs.js').then(build).then((model) => createSession(model, {ep: 'cpu', threads: this.threads}))
      this.sessions.set(key, session)
    }
    return session
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

let shared: MatMulEngine | undefined

/** The engine behind the free functions `gemm` and `gemmAddHalf` (every available core; sessions kept for the process). */
function sharedEngine(): MatMulEngine {
  shared ??= new MatMulEngine()
  return shared
}

/** `MatMulEngine.gemm` on the process-wide engine. */
export function gemm<T extends GemmArray>(a: T, aShape: readonly [number, number], b: T, bShape: readonly [number, number], c?: T, options: GemmOptions = {}): Promise<T> {
  return sharedEngine().gemm(a, aShape, b, bShape, c, options)
}

/** `MatMulEngine.gemmAddHalf` on the process-wide engine. */
export function gemmAddHalf(a: Float32Array, aShape: readonly [number, number], b: Float32Array, bShape: readonly [number, number], c16: Uint16Array): Promise<Uint16Array> {
  return sharedEngine().gemmAddHalf(a, aShape, b, bShape, c16)
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
