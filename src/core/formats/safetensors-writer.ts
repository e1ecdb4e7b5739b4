/**
 * Streaming safetensors writer. The whole layout is planned from the tensor
 * specs first; the header is written and the file preallocated (unwritten
 * ranges read as zeros); tensor data then arrives in any order, whole or in
 * pieces, by positional writes. The file lives under a temporary name until
 * `commit()` renames it into place.
 */
import {AtomicFile, OutputOptions} from '../io/atomic-output.js'
import {writeFully} from '../io/positional.js'
import {describeSystemError} from '../errors.js'
import {bytesOf} from '../dtype.js'
import {PlannedFile, TensorInfo, TensorSpec, planFile} from './safetensors-header.js'

export interface SafetensorsWriterOptions extends OutputOptions {
  /** `__metadata__` entries (strings only). */
  metadata?: Readonly<Record<string, string>> | ReadonlyMap<string, string>
}

export class SafetensorsWriter {
  private constructor(
    private readonly output: AtomicFile,
    readonly plan: PlannedFile,
  ) {}

  get path(): string {
    return this.output.finalPath
  }

  get tensors(): ReadonlyMap<string, TensorInfo> {
    return this.plan.tensors
  }

  /**
   * Plan the file, create it under a temporary name, write the header and
   * preallocate the data section.
   * @throws UsageError when the output exists and not `force`
   */
  static async create(path: string, specs: readonly TensorSpec[], options: SafetensorsWriterOptions = {}): Promise<SafetensorsWriter> {
    const plan = planFile(specs, options.metadata)
    const output = await AtomicFile.createPlanned(path, plan.fileSize, plan.headerBytes, options)
    return new SafetensorsWriter(output, plan)
  }

  /** Write all of tensor `name`'s data. */
  async writeTensor(name: string, data: ArrayBufferView): Promise<void> {
    const info = this.info(name)
    if (data.byteLength !== info.byteLength) {
      throw new RangeError(`tensor "${name}" needs ${info.byteLength} bytes, got ${data.byteLength}`)
    }
    await this.writeTensorBytes(name, 0, data)
  }

  /** Write part of tensor `name`'s data, starting `byteOffset` bytes into it. */
  async writeTensorBytes(name: string, byteOffset: number, data: ArrayBufferView): Promise<void> {
    const info = this.info(name)
    if (byteOffset < 0 || byteOffset + data.byteLength > info.byteLength) {
      throw new RangeError(`write of ${data.byteLength} bytes at ${byteOffset} is outside tensor "${name}" (${info.byteLength} bytes)`)
    }
    try {
      await writeFully(this.output.handle, bytesOf(data), this.plan.dataStart + info.dataOffsets[0] + byteOffset)
    } catch (error) {
      throw describeSystemError(error, 'write', this.path)
    }
  }

  /**
   * Replace the `__metadata__` written by `create`, for values known only once
   * the data is written (e.g. fixed-width hashes). The tensor table stays.
   * @throws RangeError when the new header does not take the same room as the planned one
   */
  async rewriteMetadata(metadata: Readonly<Record<string, string>> | ReadonlyMap<string, string>): Promise<void> {
    const specs = [...this.plan.tensors.values()].map((t) => ({name: t.name, dtype: t.dtype, shape: t.shape}))
    const plan = planFile(specs, metadata)
    if (plan.dataStart !== this.plan.dataStart) {
      throw new RangeError(`the new header needs ${plan.dataStart} bytes before the data but the file has room for ${this.plan.dataStart}`)
    }
    try {
      await writeFully(this.output.handle, plan.headerBytes, 0)
    } catch (error) {
      throw describeSystemError(error, 'write', this.path)
    }
  }

  /**
   * Flush the data written so far to disk (fdatasync). Started in the
   * background while writing goes on, it lets the disk work during the copy,
   * so that `commit` has little left to flush.
   */
  async sync(): Promise<void> {
    try {
      await this.output.handle.datasync()
    } catch (error) {
      throw describeSystemError(error, 'write', this.path)
    }
  }

  /** Finish: flush and rename into place. */
  async commit(): Promise<void> {
    await this.output.commit()
  }

  /** Give up: remove the temporary file. */
  async abort(): Promise<void> {
    await this.output.abort()
  }

  private info(name: string): TensorInfo {
    const info = this.plan.tensors.get(name)
    if (!info) throw new RangeError(`tensor "${name}" is not in the planned file`)
    return info
  }
}

/** Write a whole small file in one go: specs with their data. */
export async function writeSafetensors(
  path: string,
  tensors: ReadonlyArray<TensorSpec & {data: ArrayBufferView}>,
  options: SafetensorsWriterOptions = {},
): Promise<void> {
  const writer = await SafetensorsWriter.create(path, tensors, options)
  try {
    for (const t of tensors) await writer.writeTensor(t.name, t.data)
    await writer.commit()
  } catch (error) {
    await writer.abort()
    throw error
  }
}
