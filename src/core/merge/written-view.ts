/**
 * A written safetensors model read back in the base's layout: weights that
 * were transposed before quantizing (GPT-2's Conv1D weights, stored [in, out]
 * in the base and [out, in] in bitsandbytes' nf4) are transposed back, so the
 * quality report compares them row by row with the base.
 */
import {transposeTyped} from '../linalg/dense.js'
import type {ModelReader} from '../model-io/model-reader.js'

export class TransposedBackView {
  private cache: {name: string; values: Float32Array; cols: number} | undefined

  constructor(
    private readonly output: ModelReader,
    /** Names of tensors written transposed. */
    private readonly transposed: ReadonlySet<string>,
  ) {}

  /** Rows `[start, start + count)` of `name` in the base's orientation, float32. */
  async readRows(name: string, start: number, count: number): Promise<Float32Array> {
    if (!this.transposed.has(name)) return this.output.readRows(name, start, count)
    if (this.cache?.name !== name) {
      const [rows, cols] = this.output.get(name).shape as [number, number]
      this.cache = {name, values: transposeTyped(await this.output.readRows(name, 0, rows), rows, cols), cols: rows}
    }
    const {values, cols} = this.cache
    return values.slice(start * cols, (start + count) * cols)
  }
}
