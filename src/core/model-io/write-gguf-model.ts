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
import {QUANT_SCHEMES} from '../quant/schemes.js'
import {copyStored} from './copy-stored.js'
import {ROW_CHUNK_ELEMENTS, TensorEncoding, chunkRows} from './encode-tensor.js'
import {TensorWriting, startWriting} from './tensor-writing.js'
import type {WriteModelOptions, WriteModelResult, WrittenTensor} from './write-model.js'
import {shapeSize} from '../shape.js'
import {GgufModelPlan, PlannedGgufTensor, ggmlFloatDtype, planGgufModel} from './gguf-model-plan.js'

/** Rows per chunk: whole heads when rows are permuted, the whole tensor when it is transposed. */
function floatChunkRows(t: PlannedGgufTensor, rows: number, cols: number): number {
  return t.transpose ? rows : chunkRows(rows, cols, t.permuteHeads ? rows / t.permuteHeads : 1, ROW_CHUNK_ELEMENTS)
}

/** Write one planned tensor; inputs are checked finite where read, computed values before they reach the output (`w.output`, for messages). */
async function writeTensor(t: PlannedGgufTensor, w: TensorWriting): Promise<number> {
  const {source, sink, output: out} = w
  if (t.values) {
    const bytes = fromFloat('F32', t.values)
    await sink(t.name, 0, bytes)
    return bytes.byteLength
  }
  const name = t.source!
  if (t.copy) {
    const size = source.storedInfo(name).byteLength
    await copyStored(source, name, size, (at, data) => sink(t.name, at, data), w.copyBuffers)
    return size
  }
  const logical = source.get(name)
  const shape = logical.shape
  const rows = shape.length <= 1 ? 1 : shape[0]!
  const cols = shape.length <= 1 ? shapeSize(shape) : shapeSize(shape) / Math.max(1, rows)
  const job = t.job
  const dtype = ggmlFloatDtype(t.type)
  const quant = job?.quant
  if (quant) {
    const scheme = QUANT_SCHEMES[quant.scheme]
    if (scheme.format !== 'gguf') throw new RangeError(`${quant.scheme} is not stored in GGUF`)
    const encoded = await w.encoding!.encode({source, name, quant, transform: job?.transform, permuteHeads: t.permuteHeads, transpose: t.transpose, output: w.output})
    const [part] = scheme.storedParts(t.name, encoded, logical.dtype)
    await w.behind.add(() => sink(t.name, 0, part!.data))
    return part!.data.byteLength
  }
  if (!dtype) throw new RangeError(`cannot write ${t.name} as ${t.type}`)
  const step = floatChunkRows(t, rows, cols)
  const half = !t.transpose && dtype === 'F16' && logical.encoding === 'plain' && logical.dtype === 'F16' && job?.transformHalf !== undefined
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
    const bytes = fromFloat(dtype, values)
    assertFiniteResult(`write ${out}`, name, dtype, bytes, r0 * cols)
    await sink(t.name, r0 * cols * DTYPES[dtype].bytes, bytes)
    written += bytes.byteLength
  }
  return written
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
  // the encoding threads load while the plan (tokenizer, metadata) is made
  const encoding = [...options.jobs.values()].some((j) => j.quant) ? new TensorEncoding(options.threads ?? 1) : undefined
  try {
    return await writePlanned(options, await planGgufModel(options.source, options.jobs), encoding)
  } finally {
    await encoding?.close()
  }
}

async function writePlanned(options: WriteModelOptions, plan: GgufModelPlan, encoding: TensorEncoding | undefined): Promise<WriteGgufModelResult> {
  const planned = plan.tensors.reduce((s, t) => s + Math.ceil(shapeSize(t.shape) / GGML_TYPES[t.type].blockSize) * GGML_TYPES[t.type].typeSize, 0)
  assertDiskFits([{path: options.out, bytes: planned, what: 'the model'}], `write ${options.out}`)
  const kv = [...plan.kv, ...(options.ggufKV ?? [])]
  const writer = await GgufWriter.create(
    options.out,
    kv,
    plan.tensors.map((t) => ({name: t.name, shape: t.shape, type: t.type})),
    {force: options.force},
  )
  const written: WrittenTensor[] = new Array<WrittenTensor>(plan.tensors.length)
  let done = 0
  const write = async (i: number, t: PlannedGgufTensor) => {
    let bytes: number
    try {
      bytes = await writeTensor(t, writing)
    } catch (error) {
      throw inTensor(error, t, options.source.path)
    }
    const dtype = ggmlFloatDtype(t.type) ?? t.job?.dtype ?? (t.source ? options.source.get(t.source).dtype : 'F32')
    written[i] = {name: t.source ?? t.name, shape: t.shape, written: t.copy ? 'copy' : (t.job?.quant?.scheme ?? 'float'), dtype, bytes}
    options.onProgress?.({stage: 'tensors', done: ++done, total: plan.tensors.length})
  }
  const writing = startWriting(options.source, (name, at, data) => writer.writeTensorBytes(name, at, data), options.out, encoding)
  // verbatim copies (an embedding kept in F16) run one after another beside the encoding: the threads compute while a copy waits on the disk
  let copies: Promise<void> = Promise.resolve()
  let copyFailed = false
  try {
    for (const [i, t] of plan.tensors.entries()) {
      if (copyFailed) break
      if (t.copy && encoding) {
        copies = copies.then(() => write(i, t))
        copies.catch(() => (copyFailed = true))
      } else {
        await write(i, t)
      }
    }
    await copies
    await writing.behind.flush()
    await options.inspect?.(writer.tempPath)
    await writer.commit()
  } catch (error) {
    await copies.catch(() => undefined)
    await writing.behind.settle()
    await writer.abort()
    throw error
  }
  return {out: options.out, format: 'gguf', files: [basename(options.out)], tensors: written, bytes: writer.plan.fileSize, plan}
}
