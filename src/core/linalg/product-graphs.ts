/**
 * The ONNX graphs behind `MatMulEngine`, built with the graph builder. Every
 * dimension is symbolic, so one session per graph serves products of any
 * size:
 * - `matmulGraph`: `c = op(a) @ op(b)`, 2-D or 3-D operands (numpy
 *   broadcasting over one batch dimension), op = identity or a Transpose of
 *   the last two axes;
 * - `gemmGraph`: ONNX `Gemm`, `Y = op(A) · op(B) (+ C)`, C added inside the
 *   product (MLAS accumulates into it), so the result is bit for bit what a
 *   Gemm gives, not MatMul followed by Add;
 * - `gemmHalfGraph`: `Y16 = f16(A · B + f32(C16))`, C widened and the sum
 *   narrowed by `Cast` (round to nearest even, the same bits as
 *   `fromFloat('F16', …)`).
 */
import {DTYPES} from '../dtype.js'
import {GraphBuilder} from '../onnx/graph-builder.js'

/** Element type of a product; both operands and the result have it. */
export type Precision = 'float32' | 'float64'

/** ONNX `TensorProto.DataType` codes, the `to` of a Cast. */
const CAST_TO = {float32: DTYPES.F32.onnx.code, float16: DTYPES.F16.onnx.code} as const

/** `c = op(a) @ op(b)`: inputs `a`, `b` of ranks 2 or 3, output `c`. */
export function matmulGraph(precision: Precision, rankA: number, rankB: number, transposeA: boolean, transposeB: boolean): Uint8Array {
  const g = new GraphBuilder('matmul')
  const operand = (name: string, rank: number, transposed: boolean): string => {
    g.input(name, precision, Array.from({length: rank}, (_, i) => `${name}${i}`))
    return transposed ? g.op('Transpose', [name], {perm: rank === 3 ? [0, 2, 1] : [1, 0]}) : name
  }
  const left = operand('a', rankA, transposeA)
  const right = operand('b', rankB, transposeB)
  g.node('MatMul', [left, right], {}, {outputs: ['c']})
  g.output('c', precision, Array.from({length: Math.max(rankA, rankB)}, (_, i) => `c${i}`))
  return g.encode()
}

/** `Y = op(A) · op(B) (+ C)` with ONNX `Gemm`: inputs `A`, `B` (and `C`), output `Y`. */
export function gemmGraph(precision: Precision, transA: boolean, transB: boolean, withC: boolean): Uint8Array {
  const g = new GraphBuilder('gemm')
  g.input('A', precision, transA ? ['K', 'M'] : ['M', 'K'])
  g.input('B', precision, transB ? ['N', 'K'] : ['K', 'N'])
  if (withC) g.input('C', precision, ['M', 'N'])
  g.node('Gemm', withC ? ['A', 'B', 'C'] : ['A', 'B'], {transA: transA ? 1 : 0, transB: transB ? 1 : 0}, {outputs: ['Y']})
  g.output('Y', precision, ['M', 'N'])
  return g.encode()
}

/** `Y16 = f16(A · B + f32(C16))`: inputs `A`, `B` (float32) and `C16` (float16), output `Y16`. */
export function gemmHalfGraph(): Uint8Array {
  const g = new GraphBuilder('gemm_f16_c')
  g.input('A', 'float32', ['M', 'K'])
  g.input('B', 'float32', ['K', 'N'])
  g.input('C16', 'float16', ['M', 'N'])
  const c = g.op('Cast', ['C16'], {to: CAST_TO.float32})
  const y = g.op('Gemm', ['A', 'B', c])
  g.node('Cast', [y], {to: CAST_TO.float16}, {outputs: ['Y16']})
  g.output('Y16', 'float16', ['M', 'N'])
  return g.encode()
}
