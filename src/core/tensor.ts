/**
 * A tensor held in memory: dtype, shape and the stored little-endian bytes.
 * The constructor checks that the bytes match the shape exactly.
 */
import {DTYPES, DType, TypedArray, toFloat32, toFloat64, typedView} from './dtype.js'
import {shapeSize} from './shape.js'

export class Tensor {
  readonly dtype: DType
  readonly shape: readonly number[]
  readonly bytes: Uint8Array

  /** @throws RangeError when `bytes.byteLength` is not `product(shape) × bytes per element` */
  constructor(dtype: DType, shape: readonly number[], bytes: Uint8Array) {
    const expected = shapeSize(shape) * DTYPES[dtype].bytes
    if (bytes.byteLength !== expected) {
      throw new RangeError(`tensor data is ${bytes.byteLength} bytes but ${dtype} [${shape.join(', ')}] needs ${expected}`)
    }
    this.dtype = dtype
    this.shape = [...shape]
    this.bytes = bytes
  }

  get elementCount(): number {
    return shapeSize(this.shape)
  }

  /** The elements as their natural typed array (F16/BF16 as raw Uint16Array bits). */
  typed(): TypedArray {
    return typedView(this.dtype, this.bytes)
  }

  /** The elements decoded to float32 (a view for F32 data, a copy otherwise). */
  toFloat32(): Float32Array {
    return toFloat32(this.dtype, this.bytes)
  }

  /** The elements decoded to float64 (always a copy). */
  toFloat64(): Float64Array {
    return toFloat64(this.dtype, this.bytes)
  }
}
