/**
 * Write a model tensor by tensor: each logical tensor of the source is copied
 * verbatim, or decoded to float32 in row chunks, optionally changed by a
 * `RowTransform` (the merge adds its delta there), and written as a float
 * dtype or encoded with a 4-bit scheme. Peak memory is one row chunk plus the
 * encoded form of the tensor being written (a quarter of an f16 tensor),
 * never the model.
 *
 * Outputs: a safetensors folder (`model.safetensors`, or the source's shard
 * files with a fresh `model.safetensors.index.json`; config.json and other
 * small files copied), or one GGUF file. Everything is written under
 * temporary names; `inspect` (the quality report) reads the finished files
 * before they are renamed into place, and an error anywhere leaves nothing.
 */
import {copyFile, readFile, readdir, stat, writeFile} from 'node:fs/promises'
import {join} from 'node:path'
import {DTYPES, DType, fromFloat} from '../dtype.js'
import {InputError, LoraError, UsageError, describeSystemError} from '../errors.js'
import type {GgufKV} from '../formats/gguf-types.js'
import {TensorSpec, sanitizeName} from '../formats/safetensors-header.js'
import {assertFiniteData, assertFiniteResult} from '../formats/tensor-bytes.js'
import {SafetensorsWriter} from '../formats/safetensors-writer.js'
import {SHARD_INDEX_NAME, SINGLE_MODEL_NAME} from '../formats/sharded-model.js'
import {AtomicDirectory} from '../io/atomic-output.js'
import {MODEL_OUTPUT_KIND} from '../io/output-target.js'
import {assertDiskFits} from '../io/resources.js'
import type {ProgressCallback} from '../progress.js'
import {parseJsonKeepingFloats, stringifyJsonKeepingFloats} from '../formats/json-floats.js'
import {shapeSize} from '../shape.js'
import type {LogicalTensor, ModelReader} from './model-reader.js'
import {QUANT_SCHEMES, QuantOptions} from '../quant/schemes.js'
import {copyStored} from './copy-stored.js'
import {ROW_CHUNK_ELEMENTS, RowTransform, TensorEncoding, chunkRows} from './encode-tensor.js'
import {TensorSink, TensorWriting, startWriting} from './tensor-writing.js'

export {ROW_CHUNK_ELEMENTS}
export type {RowTransform}
/** Files beside the weights larger than this are not copied (tokenizers are a few MB). */
export const MAX_SMALL_FILE_BYTES = 64 << 20
/** Weight files in other formats are never copied next to the output. */
const WEIGHT_FILE = /\.(safetensors|bin|pt|pth|ckpt|gguf|h5|msgpack|onnx|onnx_data)$|\.safetensors\.index\.json$/

/** Changes binary16 rows `[start, start + count)` (as Uint16 bits) before they are written; the result is binary16 too. */
export type HalfRowTransform = (start: number, count: number, rows: Uint16Array) => Promise<Uint16Array>

/** What to do with one logical tensor; tensors without a job are copied. */
export interface TensorJob {
  /** Encode with this scheme (2-D only). */
  readonly quant?: QuantOptions
  /** Float dtype to write when not quantized (default: the tensor's dtype). */
  readonly dtype?: DType
  readonly transform?: RowTransform
  /**
   * The same change on binary16 rows (bits), used instead of `transform` when a
   * plain F16 tensor is written as F16 unquantized: no float32 round trip in JavaScript.
   */
  readonly transformHalf?: HalfRowTransform
  /**
   * Encode the transpose ([cols, rows]) of the tensor: GPT-2's Conv1D weights are stored [in, out]
   * but bitsandbytes holds every 4-bit weight as [out, in] (the quant state records [out, in]).
   */
  readonly transposeBeforeEncode?: boolean
}

export interface WriteModelOptions {
  readonly source: ModelReader
  /** Output folder (safetensors) or file (gguf). */
  readonly out: string
  readonly format: 'safetensors' | 'gguf'
  readonly jobs: ReadonlyMap<string, TensorJob>
  readonly force?: boolean
  /** Extra safetensors `__metadata__` entries. */
  readonly metadata?: Readonly<Record<string, string>>
  /** Extra GGUF metadata. */
  readonly ggufKV?: readonly GgufKV[]
  /** Edit config.json (parsed) before it is written to the output folder. */
  readonly editConfig?: (config: Record<string, unknown>) => void
  /** Runs on the finished files (at `path`, still under a temporary name) before they are renamed into place. */
  readonly inspect?: (path: string) => Promise<void>
  readonly onProgress?: ProgressCallback
  /** Threads that encode quantized tensors (default 1: the calling thread; the commands default to every core). */
  readonly threads?: number
}

export interface WrittenTensor {
  readonly name: string
  readonly shape: readonly number[]
  /** `copy`: stored bytes unchanged; `float`: written as `dtype`; a scheme name: encoded. */
  readonly written: 'copy' | 'float' | QuantOptions['scheme']
  readonly dtype: DType
  readonly bytes: number
}

export interface WriteModelResult {
  readonly out: string
  readonly format: 'safetensors' | 'gguf'
  readonly files: string[]
  readonly tensors: WrittenTensor[]
  readonly bytes: number
}

interface Planned {
  readonly tensor: LogicalTensor
  readonly job: TensorJob | undefined
  readonly action: 'copy' | 'float' | 'encode'
  readonly dtype: DType
  readonly specs: TensorSpec[]
  readonly file: string
}

/** Bytes of a tensor's planned parts. */
function plannedBytes(specs: readonly TensorSpec[]): number {
  return specs.reduce((bytes, s) => bytes + shapeSize(s.shape) * DTYPES[s.dtype].bytes, 0)
}

function plan(options: WriteModelOptions): Planned[] {
  const {source} = options
  const out: Planned[] = []
  for (const tensor of source.tensors.values()) {
    const job = options.jobs.get(tensor.name)
    const file = tensor.shard ?? SINGLE_MODEL_NAME
    if (job?.quant) {
      const q = job.quant
      const scheme = QUANT_SCHEMES[q.scheme]
      if (scheme.format !== 'safetensors') throw new UsageError('BAD_FLAG', `${q.scheme} is stored as ${scheme.format}, not safetensors`)
      const [rows, cols] = tensor.shape as [number, number]
      const shape: [number, number] = job.transposeBeforeEncode ? [cols, rows] : [rows, cols]
      const dtype = job.dtype ?? tensor.dtype
      out.push({tensor, job, action: 'encode', dtype, specs: scheme.plannedParts(tensor.name, shape, q, dtype), file})
      continue
    }
    if (tensor.encoding !== 'plain' && !job) {
      const scheme = QUANT_SCHEMES[tensor.encoding]
      if (scheme.format !== 'safetensors') throw new RangeError(`tensor "${tensor.name}" is ${tensor.encoding} and has no job for a safetensors output`)
      const specs = tensor.parts.map((p) => {
        const i = source.storedInfo(p)
        return {name: p, dtype: i.dtype, shape: i.shape}
      })
      out.push({tensor, job, action: 'copy', dtype: tensor.dtype, specs, file})
      continue
    }
    const dtype = job?.dtype ?? tensor.dtype
    const changes = job?.transform !== undefined || dtype !== tensor.dtype || tensor.encoding !== 'plain'
    if (changes && DTYPES[dtype].kind !== 'float') throw new RangeError(`tensor "${tensor.name}" cannot be written as ${dtype}`)
    out.push({tensor, job, action: changes ? 'float' : 'copy', dtype, specs: [{name: tensor.name, dtype, shape: tensor.shape}], file})
  }
  return out
}

/** Write one planned tensor; computed values are checked finite before they reach the output (`w.output`, for messages). */
async function writeOne(p: Planned, w: TensorWriting): Promise<number> {
  const {tensor, job} = p
  const {source, sink} = w
  if (p.action === 'copy') {
    let total = 0
    for (const part of tensor.parts) {
      const size = source.storedInfo(part).byteLength
      await copyStored(source, part, size, (at, data) => sink(part, at, data), w.copyBuffers)
      total += size
    }
    return total
  }
  if (p.action === 'encode') {
    const quant = job!.quant!
    const encoded = await w.encoding!.encode({source, name: tensor.name, quant, transform: job?.transform, transpose: job?.transposeBeforeEncode === true, output: w.output})
    const parts = QUANT_SCHEMES[quant.scheme].storedParts(tensor.name, encoded, p.dtype)
    await w.behind.add(async () => {
      for (const part of parts) await sink(part.name, 0, part.data)
    })
    return parts.reduce((sum, part) => sum + part.data.byteLength, 0)
  }
  const shape = tensor.shape
  const rows = shape.length <= 1 ? 1 : shape[0]!
  const cols = shape.length <= 1 ? shapeSize(shape) : shapeSize(shape) / Math.max(1, rows)
  const step = chunkRows(rows, cols, 1, ROW_CHUNK_ELEMENTS)
  let written = 0
  if (job?.transformHalf && tensor.encoding === 'plain' && tensor.dtype === 'F16' && p.dtype === 'F16') {
    return writeHalfRows(tensor.name, rows, cols, step, job.transformHalf, source, sink, w.output)
  }
  // one chunk read ahead and one write in flight, so file I/O overlaps the arithmetic
  const read = (r0: number) => (r0 < rows ? source.readRows(tensor.name, r0, Math.min(step, rows - r0)) : undefined)
  let next = read(0)
  let pendingWrite: Promise<void> | undefined
  try {
    for (let r0 = 0; r0 < rows; r0 += step) {
      const n = Math.min(step, rows - r0)
      let values = await next!
      next = read(r0 + step)
      if (job?.transform) {
        values = await job.transform(r0, n, values)
        assertFiniteResult(`write ${w.output}`, tensor.name, 'F32', values, r0 * cols)
      }
      const bytes = fromFloat(p.dtype, values)
      assertFiniteResult(`write ${w.output}`, tensor.name, p.dtype, bytes, r0 * cols)
      await pendingWrite
      pendingWrite = sink(tensor.name, r0 * cols * DTYPES[p.dtype].bytes, bytes)
      written += bytes.byteLength
    }
    await pendingWrite
  } finally {
    // settle the read-ahead even on error, so no read outlives the file
    await next?.catch(() => undefined)
    await pendingWrite?.catch(() => undefined)
  }
  return written
}

/** A plain F16 tensor transformed and written as F16 on its stored bits, chunk by chunk, reads and writes overlapping the arithmetic. */
async function writeHalfRows(name: string, rows: number, cols: number, step: number, transform: HalfRowTransform, source: ModelReader, sink: TensorSink, sinkPath: string): Promise<number> {
  const rowBytes = cols * 2
  const read = async (r0: number) => {
    const bytes = await source.readBytes(name, r0 * rowBytes, (r0 + Math.min(step, rows - r0)) * rowBytes)
    assertFiniteData(source.path, name, 'F16', bytes, [rows, cols], r0 * cols)
    // a fresh, aligned copy when the bytes sit at an odd offset of a shared buffer
    return bytes.byteOffset % 2 === 0 ? new Uint16Array(bytes.buffer, bytes.byteOffset, bytes.byteLength / 2) : new Uint16Array(bytes.slice().buffer)
  }
  let next: Promise<Uint16Array> | undefined = rows > 0 ? read(0) : undefined
  let pendingWrite: Promise<void> | undefined
  let written = 0
  try {
    for (let r0 = 0; r0 < rows; r0 += step) {
      const n = Math.min(step, rows - r0)
      const values = await next!
      next = r0 + step < rows ? read(r0 + step) : undefined
      const out = await transform(r0, n, values)
      const bytes = new Uint8Array(out.buffer, out.byteOffset, out.byteLength)
      assertFiniteResult(`write ${sinkPath}`, name, 'F16', bytes, r0 * cols)
      await pendingWrite
      pendingWrite = sink(name, r0 * rowBytes, bytes)
      written += bytes.byteLength
    }
    await pendingWrite
  } finally {
    await next?.catch(() => undefined)
    await pendingWrite?.catch(() => undefined)
  }
  return written
}

/** Add the tensor name to errors raised while encoding or transforming it. */
function inTensor(error: unknown, name: string, file: string): unknown {
  if (error instanceof LoraError && !error.message.startsWith('read ') && !error.message.startsWith('write ')) {
    return new InputError(error.code, `quantize ${file}: tensor "${sanitizeName(name)}": ${error.message}`, {cause: error})
  }
  return error
}

/**
 * Write the model.
 * @throws UsageError when `out` exists and not `force`; InputError for tensors that cannot be encoded (naming them)
 */
export async function writeModel(options: WriteModelOptions): Promise<WriteModelResult> {
  // GGUF models follow llama.cpp's conventions (names, layout, metadata, tokenizer): write-gguf-model.ts
  if (options.format !== 'safetensors') throw new RangeError(`writeModel writes safetensors folders; ${options.format} goes through writeModelOutput`)
  const planned = plan(options)
  assertDiskFits([{path: options.out, bytes: planned.reduce((s, p) => s + plannedBytes(p.specs), 0), what: 'the model'}], `write ${options.out}`)
  const total = planned.length
  let done = 0
  const written: WrittenTensor[] = []
  const record = (p: Planned, bytes: number) => {
    written.push({name: p.tensor.name, shape: p.tensor.shape, written: p.action === 'encode' ? p.job!.quant!.scheme : p.action, dtype: p.dtype, bytes})
    options.onProgress?.({stage: 'tensors', done: ++done, total})
  }
  const dir = await AtomicDirectory.create(options.out, {force: options.force, kind: MODEL_OUTPUT_KIND})
  // one set of encoding threads for every file of a sharded output
  const encoding = planned.some((p) => p.action === 'encode') ? new TensorEncoding(options.threads ?? 1) : undefined
  try {
    const files = [...new Set(planned.map((p) => p.file))]
    const weightMap: Record<string, string> = {}
    let bytes = 0
    for (const file of files) {
      const inFile = planned.filter((p) => p.file === file)
      const specs = inFile.flatMap((p) => p.specs)
      const writer = await SafetensorsWriter.create(join(dir.path, file), specs, {metadata: {format: 'pt', ...options.metadata}})
      const writing = startWriting(options.source, (name, at, data) => writer.writeTensorBytes(name, at, data), options.out, encoding)
      try {
        for (const p of inFile) {
          try {
            record(p, await writeOne(p, writing))
          } catch (error) {
            throw inTensor(error, p.tensor.name, options.source.path)
          }
        }
        await writing.behind.flush()
        await writer.commit()
      } catch (error) {
        await writing.behind.settle()
        await writer.abort()
        throw error
      }
      for (const info of writer.tensors.values()) {
        weightMap[info.name] = file
        bytes += info.byteLength
      }
    }
    const outFiles = [...files]
    if (files.length > 1 || options.source.shardFiles !== undefined) {
      await writeFile(join(dir.path, SHARD_INDEX_NAME), `${JSON.stringify({metadata: {total_size: bytes}, weight_map: weightMap}, null, 2)}\n`)
      outFiles.push(SHARD_INDEX_NAME)
    }
    outFiles.push(...(await copySmallFiles(options, dir.path)))
    await options.inspect?.(dir.path)
    await dir.commit()
    return {out: options.out, format: 'safetensors', files: outFiles, tensors: written, bytes}
  } catch (error) {
    await dir.abort()
    throw describeSystemError(error, 'write', options.out)
  } finally {
    await encoding?.close()
  }
}

/** Copy config.json, tokenizer files and other small non-weight files from the model's folder (only when it has a config.json). */
async function copySmallFiles(options: WriteModelOptions, target: string): Promise<string[]> {
  const folder = options.source.folder
  if (!folder) return []
  const entries = await readdir(folder, {withFileTypes: true})
  if (!entries.some((e) => e.name === 'config.json')) return []
  const copied: string[] = []
  for (const e of entries) {
    if (!e.isFile() || e.name.startsWith('.') || WEIGHT_FILE.test(e.name)) continue
    const from = join(folder, e.name)
    if ((await stat(from)).size > MAX_SMALL_FILE_BYTES) continue
    if (e.name === 'config.json' && options.editConfig) {
      let config: unknown
      try {
        // floats stay floats (`6.0`, `10000.0`): transformers type-checks some of them
        config = parseJsonKeepingFloats(await readFile(from, 'utf8'))
      } catch {
        throw new InputError('CONFIG_INVALID', `read ${from}: not valid JSON`)
      }
      if (typeof config !== 'object' || config === null || Array.isArray(config)) throw new InputError('CONFIG_INVALID', `read ${from}: not a JSON object`)
      options.editConfig(config as Record<string, unknown>)
      await writeFile(join(target, e.name), `${stringifyJsonKeepingFloats(config)}\n`)
    } else {
      await copyFile(from, join(target, e.name))
    }
    copied.push(e.name)
  }
  return copied
}
