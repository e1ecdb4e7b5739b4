/**
 * A GGUF model written from a Hugging Face checkpoint, read back under the
 * checkpoint's names and layout (q/k rows in transformers' order, GPT-2's
 * Conv1D weights [in, out]), so the merge quality report compares the file
 * as written with the source tensor by tensor.
 */
import {InputError} from '../errors.js'
import {sanitizeName} from '../formats/safetensors-header.js'
import {transposeTyped} from '../linalg/dense.js'
import {ggufTensorName, permuteRowsFromGguf, qkRole} from '../models/gguf-names.js'
import {ModelReader} from './model-reader.js'
import type {GgufModelSpec} from '../gguf/hyperparameters.js'

export class GgufAsHfReader {
  private cache: {name: string; values: Float32Array; cols: number} | undefined

  private constructor(
    private readonly gguf: ModelReader,
    private readonly spec: GgufModelSpec,
  ) {}

  /** Open a GGUF written from a checkpoint described by `spec`. */
  static async open(path: string, spec: GgufModelSpec): Promise<GgufAsHfReader> {
    return new GgufAsHfReader(await ModelReader.open(path), spec)
  }

  /** Rows `[start, start + count)` of Hugging Face tensor `hfName`, as the checkpoint lays it out, in float32. */
  async readRows(hfName: string, start: number, count: number): Promise<Float32Array> {
    if (this.cache?.name !== hfName) {
      const arch = this.spec.architecture
      const name = ggufTensorName(arch, hfName)
      const t = name ? this.gguf.tensors.get(name) : undefined
      if (!name || !t) throw new InputError('TENSOR_NOT_FOUND', `read ${this.gguf.path}: no tensor for "${sanitizeName(hfName)}"`)
      const rows = t.shape.length <= 1 ? 1 : t.shape[0]!
      const cols = t.shape.length <= 1 ? t.shape[0]! : t.shape[1]!
      let values = await this.gguf.readRows(name, 0, rows)
      const role = arch.permuteQK ? qkRole(hfName) : undefined
      if (role) values = permuteRowsFromGguf(values, role === 'q' ? this.spec.heads : this.spec.kvHeads, cols)
      const transposed = this.spec.isConv1D(hfName) && t.shape.length === 2
      if (transposed) values = transposeTyped(values, rows, cols)
      this.cache = {name: hfName, values, cols: transposed ? rows : cols}
    }
    const {values, cols} = this.cache
    return values.slice(start * cols, (start + count) * cols)
  }

  async close(): Promise<void> {
    this.cache = undefined
    await this.gguf.close()
  }
}
