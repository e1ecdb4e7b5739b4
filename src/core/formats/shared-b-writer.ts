/**
 * Writing a `lora-pack-shared-b` file (the layout is in `shared-b-file.ts`):
 * the file is planned from each module's K, every slot's A' and each shared
 * basis are written as they are computed, and the measured errors go into the
 * header last.
 *
 * The `errors` metadata string is written with fixed-width numbers: every
 * per-slot value takes `ERROR_FIELD_WIDTH` characters (a number with 10
 * significant digits, or `null`, padded with spaces, which JSON allows
 * between tokens). The header is planned with placeholder values before the
 * data is written and rewritten with the measured values after, in the same room.
 */
import type {DType} from '../dtype.js'
import {DTYPES} from '../dtype.js'
import type {PackModuleEntry} from './pack-manifest.js'
import {InputError} from '../errors.js'
import {TensorSpec, planFile, sanitizeName} from './safetensors-header.js'
import {assertFiniteResult} from './tensor-bytes.js'
import {SafetensorsWriter} from './safetensors-writer.js'
import {CompressionInfo, SHARED_B_FORMAT, SHARED_B_FORMAT_VERSION, SharedBErrors, sharedBTensorNames} from './shared-b-file.js'

/** Room for `-1.234567890e-308` (17 characters). */
export const ERROR_FIELD_WIDTH = 17

/** A finite non-negative error as a fixed-width JSON token. */
function field(value: number | null): string {
  const text = value === null || !Number.isFinite(value) ? 'null' : String(Number(value.toPrecision(10)))
  const fitted = text.length <= ERROR_FIELD_WIDTH ? text : value!.toExponential(9)
  return fitted.padEnd(ERROR_FIELD_WIDTH, ' ')
}

/** `{"module": {"K": k, "errors": [e0, e1, …]}, …}` with fixed-width error values. */
export function formatErrorsMetadata(errors: SharedBErrors): string {
  const parts = Object.entries(errors).map(([name, {K, errors: list}]) => `${JSON.stringify(name)}:{"K":${K},"errors":[${list.map(field).join(',')}]}`)
  return `{${parts.join(',')}}`
}

/** What a shared-B file will hold. */
export interface SharedBPlan {
  /** The source pack's manifest JSON, carried over verbatim. */
  readonly manifest: string
  /** Each module of the manifest, in its order, with its K. */
  readonly modules: ReadonlyArray<{readonly module: Pick<PackModuleEntry, 'name' | 'kind' | 'in' | 'out'>; readonly K: number}>
  /** S, the source pack's slot count. */
  readonly slots: number
  /** The dtype of every tensor. */
  readonly dtype: DType
  readonly compression: CompressionInfo
}

/** The tensors and `__metadata__` of a planned shared-B file. */
export interface SharedBLayout {
  readonly specs: readonly TensorSpec[]
  /** `__metadata__` with these errors. */
  metadata(errors: SharedBErrors): Record<string, string>
  /** Errors with every slot null (the placeholder the header is planned with). */
  readonly placeholder: SharedBErrors
  /** Bytes of the JSON header. */
  readonly headerBytes: number
}

/** Tensor specs and metadata of a shared-B file, before a byte is written. */
export function sharedBLayout(plan: SharedBPlan): SharedBLayout {
  const specs: TensorSpec[] = plan.modules.flatMap(({module, K}) => {
    const names = sharedBTensorNames(module)
    return [
      {name: names.a, dtype: plan.dtype, shape: [plan.slots, K, module.in]},
      {name: names.b, dtype: plan.dtype, shape: [module.out, K]},
    ]
  })
  const placeholder: SharedBErrors = Object.fromEntries(plan.modules.map(({module, K}) => [module.name, {K, errors: new Array<number | null>(plan.slots).fill(null)}]))
  const metadata = (errors: SharedBErrors) => ({
    format: SHARED_B_FORMAT,
    format_version: SHARED_B_FORMAT_VERSION,
    manifest: plan.manifest,
    errors: formatErrorsMetadata(errors),
    compression: JSON.stringify(plan.compression),
  })
  return {specs, metadata, placeholder, headerBytes: planFile(specs, metadata(placeholder)).dataStart - 8}
}

/** A shared-B file being written under a temporary name. */
export class SharedBWriter {
  private constructor(
    private readonly writer: SafetensorsWriter,
    private readonly plan: SharedBPlan,
    private readonly layout: SharedBLayout,
  ) {}

  /**
   * Plan the file and create it under a temporary name next to `path`.
   * @throws UsageError when `path` exists and not `force`
   */
  static async create(path: string, plan: SharedBPlan, options: {force?: boolean} = {}): Promise<SharedBWriter> {
    const layout = sharedBLayout(plan)
    const writer = await SafetensorsWriter.create(path, layout.specs, {metadata: layout.metadata(layout.placeholder), force: options.force})
    return new SharedBWriter(writer, plan, layout)
  }

  /**
   * A' of `slot` on `module`: [K, in] in the file's dtype.
   * @throws InputError OUTPUT_NOT_FINITE when a value is NaN or past the dtype's range
   */
  async writeA(module: Pick<PackModuleEntry, 'name' | 'kind'>, slot: number, bytes: Uint8Array): Promise<void> {
    const name = sharedBTensorNames(module).a
    assertFiniteResult(`compress ${this.writer.path}`, name, this.plan.dtype, bytes, (slot * bytes.byteLength) / DTYPES[this.plan.dtype].bytes)
    return this.writer.writeTensorBytes(name, slot * bytes.byteLength, bytes)
  }

  /**
   * The shared basis of `module`: [out, K] in the file's dtype.
   * @throws InputError OUTPUT_NOT_FINITE
   */
  async writeSharedB(module: Pick<PackModuleEntry, 'name' | 'kind'>, bytes: Uint8Array): Promise<void> {
    const name = sharedBTensorNames(module).b
    assertFiniteResult(`compress ${this.writer.path}`, name, this.plan.dtype, bytes)
    return this.writer.writeTensor(name, bytes)
  }

  /** Bytes of one slot's A' of `module` (K · in elements). */
  slotBytes(module: string): number {
    const m = this.plan.modules.find((x) => x.module.name === module)!
    return m.K * m.module.in * DTYPES[this.plan.dtype].bytes
  }

  /** Put the measured errors into the header and rename the file into place. */
  async commit(errors: SharedBErrors): Promise<void> {
    for (const [name, e] of Object.entries(errors)) {
      const bad = e.errors.findIndex((x) => x !== null && !Number.isFinite(x))
      if (bad >= 0) throw new InputError('OUTPUT_NOT_FINITE', `compress ${this.writer.path}: the measured error of slot ${bad} on "${sanitizeName(name)}" is ${e.errors[bad]}; nothing was written`)
    }
    await this.writer.rewriteMetadata(this.layout.metadata(errors))
    await this.writer.commit()
  }

  /** Remove the temporary file. */
  abort(): Promise<void> {
    return this.writer.abort()
  }
}
