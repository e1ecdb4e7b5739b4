/**
 * Inputs for the error-code table: files written byte by byte here (so a
 * malformed one is exactly as malformed as the row says), and a few small
 * real ones (adapters, a pack, its shared-B file, a base) made once per run
 * through the CLI.
 */
import {mkdirSync, readFileSync, writeFileSync} from 'node:fs'
import {open} from 'node:fs/promises'
import {join} from 'node:path'
import * as assert from 'uvu/assert'
import {LoadedDecoder, loadDecoder} from '../../../src/core/runtime/load-decoder.js'
import {SyntheticDecoderSpec, writeSyntheticDecoder} from '../../helpers/decoder-fixtures.js'
import {runCli} from '../../helpers/index.js'

const BYTES: Record<string, number> = {F64: 8, F32: 4, F16: 2, BF16: 2, I64: 8, I32: 4, I16: 2, I8: 1, U8: 1, BOOL: 1}

/** A tensor to write: zeros unless `data` is given. */
export interface RawTensor {
  name: string
  dtype: string
  shape: number[]
  data?: Uint8Array
}

const size = (t: RawTensor) => t.shape.reduce((a, b) => a * b, 1) * BYTES[t.dtype]!

/** A safetensors file from a header (object or exact JSON text) and `data` bytes; `length` overrides the 8-byte header length. */
export function writeStHeader(path: string, header: string | object, data: Uint8Array | number = 0, length?: bigint): string {
  const json = typeof header === 'string' ? Buffer.from(header, 'latin1') : Buffer.from(JSON.stringify(header))
  const prefix = Buffer.alloc(8)
  prefix.writeBigUInt64LE(length ?? BigInt(json.length))
  writeFileSync(path, Buffer.concat([prefix, json, typeof data === 'number' ? Buffer.alloc(data) : Buffer.from(data)]))
  return path
}

/** A valid safetensors file holding `tensors` in order. */
export function writeSt(path: string, tensors: readonly RawTensor[], metadata?: Record<string, string>): string {
  const header: Record<string, unknown> = metadata ? {__metadata__: metadata} : {}
  let offset = 0
  for (const t of tensors) {
    header[t.name] = {dtype: t.dtype, shape: t.shape, data_offsets: [offset, offset + size(t)]}
    offset += size(t)
  }
  const data = Buffer.concat(tensors.map((t) => (t.data ? Buffer.from(t.data) : Buffer.alloc(size(t)))))
  return writeStHeader(path, header, data)
}

/** The metadata and tensors (with their bytes) of a safetensors file, for writing an altered copy. */
export function readSt(path: string): {metadata: Record<string, string>; tensors: RawTensor[]} {
  const bytes = readFileSync(path)
  const n = Number(bytes.readBigUInt64LE(0))
  const header = JSON.parse(bytes.subarray(8, 8 + n).toString('utf8')) as Record<string, {dtype: string; shape: number[]; data_offsets: [number, number]}>
  const {__metadata__: metadata, ...rest} = header as Record<string, unknown>
  const tensors = Object.entries(rest as Record<string, {dtype: string; shape: number[]; data_offsets: [number, number]}>)
    .sort((a, b) => a[1].data_offsets[0] - b[1].data_offsets[0])
    .map(([name, t]) => ({name, dtype: t.dtype, shape: t.shape, data: bytes.subarray(8 + n + t.data_offsets[0], 8 + n + t.data_offsets[1])}))
  return {metadata: (metadata ?? {}) as Record<string, string>, tensors}
}

/** Copy a safetensors file with its metadata and tensor list changed by `edit`. */
export function alterSt(from: string, to: string, edit: (file: {metadata: Record<string, string>; tensors: RawTensor[]}) => void): string {
  const file = readSt(from)
  edit(file)
  return writeSt(to, file.tensors, file.metadata)
}

/** LoRA A [r, in] and B [out, r] of `module` under PEFT's names. */
export function lora(module: string, r: number, inF: number, outF: number, dtype = 'F32'): RawTensor[] {
  return [
    {name: `base_model.model.${module}.lora_A.weight`, dtype, shape: [r, inF]},
    {name: `base_model.model.${module}.lora_B.weight`, dtype, shape: [outF, r]},
  ]
}

/** An adapter folder: `adapter_config.json` (LoRA r 2 unless `config` says otherwise; raw text when a string) and the tensors. */
export function writeAdapter(dir: string, tensors: readonly RawTensor[] | undefined, config: Record<string, unknown> | string = {}): string {
  mkdirSync(dir, {recursive: true})
  const json = typeof config === 'string' ? config : JSON.stringify({peft_type: 'LORA', r: 2, lora_alpha: 4, target_modules: '.*', base_model_name_or_path: null, ...config})
  writeFileSync(join(dir, 'adapter_config.json'), json)
  if (tensors) writeSt(join(dir, 'adapter_model.safetensors'), tensors, {format: 'pt'})
  return dir
}

/** A file of `bytes` bytes that takes no space (a hole), for size limits. */
export async function sparseFile(path: string, bytes: number, head?: Uint8Array): Promise<string> {
  const handle = await open(path, 'w')
  await handle.truncate(bytes)
  if (head) await handle.write(head, 0, head.length, 0)
  await handle.close()
  return path
}

/** A hand-made GGUF file: header, metadata entries and tensor infos as the row spells them. */
export function gguf(parts: {magic?: number; version?: number; tensors?: bigint; kvs?: bigint; body?: Buffer[]; data?: number}): Buffer {
  const head = Buffer.alloc(24)
  head.writeUInt32LE(parts.magic ?? 0x46554747, 0)
  head.writeUInt32LE(parts.version ?? 3, 4)
  head.writeBigUInt64LE(parts.tensors ?? 0n, 8)
  head.writeBigUInt64LE(parts.kvs ?? 0n, 16)
  const body = Buffer.concat([head, ...(parts.body ?? [])])
  const padded = Math.ceil(body.length / 32) * 32
  return Buffer.concat([body, Buffer.alloc(padded - body.length), Buffer.alloc(parts.data ?? 0)])
}

/** GGUF pieces: a string, integers, a metadata entry of a scalar type, a tensor info. */
export const g = {
  str: (s: string | Buffer) => {
    const b = typeof s === 'string' ? Buffer.from(s) : s
    return Buffer.concat([g.u64(BigInt(b.length)), b])
  },
  u32: (v: number) => {
    const b = Buffer.alloc(4)
    b.writeUInt32LE(v)
    return b
  },
  u64: (v: bigint) => {
    const b = Buffer.alloc(8)
    b.writeBigUInt64LE(v)
    return b
  },
  /** A UINT32 (type 4) entry. */
  kvU32: (key: string, v: number) => Buffer.concat([g.str(key), g.u32(4), g.u32(v)]),
  tensor: (name: string, ne: bigint[], type: number, offset: bigint) => Buffer.concat([g.str(name), g.u32(ne.length), ...ne.map(g.u64), g.u32(type), g.u64(offset)]),
}

/** Open something, use it, and close it again (a row must not leave file handles to the garbage collector). */
export async function closing<T extends {close(): Promise<void>}, R>(opening: Promise<T>, use: (it: T) => R | Promise<R>): Promise<R> {
  const it = await opening
  try {
    return await use(it)
  } finally {
    await it.close()
  }
}

/** Run `lora <args> --json` in-process; it must succeed. */
export async function must(args: string[]): Promise<void> {
  const r = await runCli([...args, '--json'])
  assert.is(r.status, 0, `${args.join(' ')}: ${r.stdout}${r.stderr}`)
}

const DECODER: SyntheticDecoderSpec = {modelType: 'llama', hidden: 16, intermediate: 32, layers: 1, heads: 2, kvHeads: 1, vocab: 32, tie: false, biases: false, seed: 1}

/** Small real inputs, made on first use and shared by the rows of one run. */
export class Fixtures {
  private readonly made = new Map<string, Promise<string>>()

  constructor(readonly root: string) {}

  private once(name: string, make: (path: string) => Promise<void>): Promise<string> {
    let p = this.made.get(name)
    if (!p) {
      const path = join(this.root, name)
      p = make(path).then(() => path)
      this.made.set(name, p)
    }
    return p
  }

  /** Three synthetic adapters (hidden 16, intermediate 24, 1 layer, r 2, q/k/v/o) in one folder. */
  adapters(count = 3): Promise<string> {
    return this.once(`adapters-${count}`, (out) => must(['synth', 'adapters', '--out', out, '--count', String(count), '--hidden', '16', '--intermediate', '24', '--layers', '1', '--rank', '2']))
  }

  /** One of those adapters. */
  async adapter(): Promise<string> {
    return join(await this.adapters(), 'adapter-0000')
  }

  /** A lora-pack of `adapters(count)`. */
  pack(count = 3): Promise<string> {
    return this.once(`pack-${count}.safetensors`, async (out) => must(['pack', await this.adapters(count), '--out', out]))
  }

  /** The pack compressed to K = 1 (lora-pack-shared-b). */
  sharedB(count = 3): Promise<string> {
    return this.once(`shared-b-${count}.safetensors`, async (out) => must(['compress', await this.pack(count), '--out', out, '--rank', '1']))
  }

  /** A tiny Llama-family decoder (Hugging Face folder, no tokenizer): hidden 16, 2 heads on 1 KV head of 8, vocab 32. */
  decoder(change: Partial<SyntheticDecoderSpec> = {}, name = 'decoder'): Promise<string> {
    return this.once(name, async (dir) => {
      mkdirSync(dir)
      await writeSyntheticDecoder(dir, {...DECODER, ...change})
    })
  }

  /** `decoder()` loaded by the runtime (at most 16 positions); closed by `close()`. */
  async model(): Promise<LoadedDecoder> {
    this.loaded ??= this.decoder().then((base) => loadDecoder({base, maxPositions: 16, threads: 1}))
    return this.loaded
  }

  /** Release what `model()` opened. */
  async close(): Promise<void> {
    await (await this.loaded)?.close()
  }

  private loaded: Promise<LoadedDecoder> | undefined

  /** A synthetic Llama base the adapters fit (f32, vocab 32). */
  base(): Promise<string> {
    return this.once('base', (out) => must(['synth', 'base', '--out', out, '--hidden', '16', '--intermediate', '24', '--layers', '1', '--vocab', '32', '--dtype', 'f32']))
  }
}

/** One row of the table: a code, the exit status a user gets, and the smallest input that reaches it. */
export interface ErrorCase {
  code: string
  exit: 1 | 2 | 3
  /** The input, in words. */
  input: string
  /** `lora` arguments that reach the code, run in-process with and without --json; `dir` is the row's own empty folder. */
  cli?: (dir: string, fx: Fixtures) => Promise<string[]> | string[]
  /** A core call that throws the code, for a code no command reaches. */
  core?: (dir: string, fx: Fixtures) => Promise<unknown> | unknown
  /** Why the row cannot run here (printed as a skip). */
  skip?: string
}
