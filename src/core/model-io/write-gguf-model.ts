/**
 * Write a GGUF model llama.cpp loads (see `model-plan.ts` for what goes in),
 * streamed tensor by tensor: rows are read in chunks, changed by the job
 * (the merge delta, in the source's orientation), reordered to llama.cpp's
 * layout (q/k rows by head, Conv1D weights transposed), then quantized or
 * converted and written by positional writes into the planned file, under a
 * temporary name until everything (and the caller's `inspect`) succeeded.
 */
import {basename} from 'node:path'
import {DTYPES, fromFloat} from '../dtype.js'
import {InputError, LoraError} from '../errors.js'
import {GGML_TYPES} from '../formats/gguf-types.js'
import {GgufWriter} from '../formats/gguf-writer.js'
import {assertFiniteData, assertFiniteResult} from '../formats/tensor-bytes.js'
import {assertDiskFits} from '../io/resources.js'
import {sanitizeName} from '../formats/safetensors-header.js'
import {transposeTyped} from '../linalg/dense.js'
import {permuteRowsToGguf} from '../models/gguf-names.js'
import type {ModelReader} from './model-reader.js'
import {QUANT_SCHEMES, createEncoder} from '../quant/schemes.js'
import {ROW_CHUNK_ELEMENTS, WriteModelOptions, WriteModelResult, WrittenTensor} from './write-model.js'
import {shapeSize} from '../shape.js'
import {GgufModelPlan, PlannedGgufTensor, ggmlFloatDtype, planGgufModel} from './gguf-model-plan.js'

/** Verbatim copies move at most this many bytes per read. */
const COPY_CHUNK_BYTES = 64 << 20

type Sink = (name: string, byteOffset: number, data: Uint8Array) => Promise<void>

/** Rows per chunk: whole heads when rows are permuted, the whole tensor when it is transposed. */
function chunkRows(t: PlannedGgufTensor, rows: number, cols: number): number {
  if (t.transpose) return rows
  const align = t.permuteHeads ? rows / t.permuteHeads : 1
  const target = Math.max(1, Math.floor(ROW_CHUNK_ELEMENTS / Math.max(1, cols)))
  return Math.min(rows, Math.max(align, target - (target % align)))
}

/** Write one planned tensor; inputs are checked finite where read, computed values before they reach `out` (for messages). */
async function writeTensor(t: PlannedGgufTensor, source: ModelReader, sink: Sink, out: string): Promise<number> {
  if (t.values) {
    const bytes = fromFloat('F32', t.values)
    await sink(t.name, 0, bytes)
    return bytes.byteLength
  }
  const name = t.source!
  if (t.copy) {
    const size = source.storedInfo(name).byteLength
    for (let at = 0; at < size; at += COPY_CHUNK_BYTES) await sink(t.name, at, await source.readBytes(name, at, Math.min(size, at + COPY_CHUNK_BYTES)))
    return size
  }
  const logical = source.get(name)
  const shape = logical.shape
  const rows = shape.length <= 1 ? 1 : shape[0]!
  const cols = shape.length <= 1 ? shapeSize(shape) : shapeSize(shape) / Math.max(1, rows)
  const job = t.job
  const dtype = ggmlFloatDtype(t.type)
  const quant = job?.quant
  const encoder = quant ? createEncoder(quant, t.shape) : undefined
  if (!encoder && !dtype) throw new RangeError(`cannot write ${t.name} as ${t.type}`)
  const step = chunkRows(t, rows, cols)
  const half = !encoder && !t.transpose && dtype === 'F16' && logical.encoding === 'plain' && logical.dtype === 'F16' && job?.transformHalf !== undefined
  let written = 0
  for (let r0 = 0; r0 < rows; r0 += step) {
    const n = Math.min(step, rows - r0)
    const heads = t.permuteHeads ? (n * t.permuteHeads) / rows : 0
    if (half) {
      const bytes = await source.readBytes(name, r0 * cols * 2, (r0 + n) * cols * 2)
      assertFiniteData(source.path, name, 'F16', bytes, shape, r0 * cols)
      let bits: Uint16Array = new Uint16Array(bytes.slice().buffer)
      bits = await job!.transformHalf!(r0, n, bits)
      assertFiniteResult(`write ${out}`, name, 'F16', new Uint8Array(bits.buffer, bits.byteOffset, bits.byteLength), r0 * cols)
      if (heads) bits = permuteRowsToGguf(bits, heads, cols)
      await sink(t.name, r0 * cols * 2, new Uint8Array(bits.buffer, bits.byteOffset, bits.byteLength))
      written += bits.byteLength
      continue
    }
    let values = await source.readRows(name, r0, n)
    if (job?.transform) {
      values = await job.transform(r0, n, values)
      assertFiniteResult(`write ${out}`, name, 'F32', values, r0 * cols)
    }
    if (heads) values = permuteRowsToGguf(values, heads, cols)
    if (t.transpose) values = transposeTyped(values, rows, cols)
    if (encoder) encoder.push(values)
    else {
      const bytes = fromFloat(dtype!, values)
      assertFiniteResult(`write ${out}`, name, dtype!, bytes, r0 * cols)
      await sink(t.name, r0 * cols * DTYPES[dtype!].bytes, bytes)
      written += bytes.byteLength
    }
  }
  if (!encoder) return written
  const scheme = QUANT_SCHEMES[quant!.scheme]
  if (scheme.format !== 'gguf') throw new RangeError(`${quant!.scheme} is not stored in GGUF`)
  const [part] = scheme.storedParts(t.name, encoder.finish(), logical.dtype)
  await sink(t.name, 0, part!.data)
  return part!.data.byteLength
}

function inTensor(error: unknown, t: PlannedGgufTensor, file: string): unknown {
  if (error instanceof LoraError && !error.message.startsWith('read ') && !error.message.startsWith('write ')) {
    return new InputError(error.code, `quantize ${file}: tensor "${sanitizeName(t.source ?? t.name)}": ${error.message}`, {cause: error})
  }
  return error
}

export interface WriteGgufModelResult extends WriteModelResult {
  readonly plan: GgufModelPlan
}

/**
 * Write `options.source` with `options.jobs` as a GGUF model llama.cpp loads.
 * @throws InputError from planning (see `planGgufModel`) or for values a scheme cannot encode; UsageError when the output exists
 */
export async function writeGgufModel(options: WriteModelOptions): Promise<WriteGgufModelResult> {
  const plan = await planGgufModel(options.source, options.jobs)
  const planned = plan.tensors.reduce((s, t) => s + Math.ceil(shapeSize(t.shape) / GGML_TYPES[t.type].blockSize) * GGML_TYPES[t.type].typeSize, 0)
  assertDiskFits([{path: options.out, bytes: planned, what: 'the model'}], `write ${options.out}`)
  const kv = [...plan.kv, ...(options.ggufKV ?? [])]
  const writer = await GgufWriter.create(
    options.out,
    kv,
    plan.tensors.map((t) => ({name: t.name, shape: t.shape, type: t.type})),
    {force: options.force},
  )
  const written: WrittenTensor[] = []
  try {
    for (const [i, t] of plan.tensors.entries()) {
      let bytes: number
      try {
        bytes = await writeTensor(t, options.source, (name, at, data) => writer.writeTensorBytes(name, at, data), options.out)
      } catch (error) {
        throw inTensor(error, t, options.source.path)
      }
      const dtype = ggmlFloatDtype(t.type) ?? t.job?.dtype ?? (t.source ? options.source.get(t.source).dtype : 'F32')
      written.push({name: t.source ?? t.name, shape: t.shape, written: t.copy ? 'copy' : (t.job?.quant?.scheme ?? 'float'), dtype, bytes})
      options.onProgress?.({stage: 'tensors', done: i + 1, total: plan.tensors.length})
    }
    await options.inspect?.(writer.tempPath)
    await writer.commit()
  } catch (error) {
    await writer.abort()
    throw error
  }
  return {out: options.out, format: 'gguf', files: [basename(options.out)], tensors: written, bytes: writer.plan.fileSize, plan}
}
