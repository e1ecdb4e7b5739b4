/**
 * Error rows for reading files: safetensors headers, GGUF, sharded models,
 * PEFT adapter folders, system errors.
 */
import {mkdirSync, symlinkSync, writeFileSync} from 'node:fs'
import {join} from 'node:path'
import {describeFailure} from '../../../src/cli/base-command.js'
import {describeSystemError} from '../../../src/core/errors.js'
import {GgufFile} from '../../../src/core/formats/gguf-reader.js'
import {LoraAdapter} from '../../../src/core/formats/peft-adapter.js'
import {SafetensorsFile} from '../../../src/core/formats/safetensors-file.js'
import {ErrorCase, closing, g, gguf, lora, sparseFile, writeAdapter, writeSt, writeStHeader} from './fixtures.js'

/** `lora inspect` of a safetensors file with this header and data. */
const inspectHeader = (header: string | object, data: Uint8Array | number = 0, length?: bigint) => (dir: string) => ['inspect', writeStHeader(join(dir, 'x.safetensors'), header, data, length)]
const u8 = (begin: number, end: number) => ({dtype: 'U8', shape: [end - begin], data_offsets: [begin, end]})

/** Open a hand-made GGUF file. */
const openGguf = (bytes: Buffer) => async (dir: string) => {
  const path = join(dir, 'x.gguf')
  writeFileSync(path, bytes)
  return closing(GgufFile.open(path), () => undefined)
}
const oneTensor = (ne: bigint[], type: number, offset: bigint, data = 32) => gguf({tensors: 1n, body: [g.tensor('t', ne, type, offset)], data})

/** `lora inspect` of an adapter folder. */
const inspectAdapter = (tensors: Parameters<typeof writeAdapter>[1], config?: Parameters<typeof writeAdapter>[2]) => (dir: string) => ['inspect', writeAdapter(join(dir, 'ad'), tensors, config)]

/** A sharded model folder: an index (object or raw text) and shard files. */
const inspectSharded = (index: string | object, shards: Record<string, Parameters<typeof writeSt>[1]> = {}) => (dir: string) => {
  const model = join(dir, 'model')
  mkdirSync(model)
  for (const [file, tensors] of Object.entries(shards)) writeSt(join(model, file), tensors)
  writeFileSync(join(model, 'model.safetensors.index.json'), typeof index === 'string' ? index : JSON.stringify(index))
  return ['inspect', model]
}

const T = {name: 'w', dtype: 'F32', shape: [2]}

export const FILE_CASES: ErrorCase[] = [
  // safetensors headers, through `lora inspect FILE`
  {code: 'SAFETENSORS_TOO_SHORT', exit: 2, input: 'a 2-byte file', cli: (dir) => (writeFileSync(join(dir, 'x.safetensors'), '\r\n'), ['inspect', join(dir, 'x.safetensors')])},
  {code: 'SAFETENSORS_HEADER_TOO_LARGE', exit: 2, input: 'a header length of 2^40', cli: inspectHeader('{}', 0, 2n ** 40n)},
  {code: 'SAFETENSORS_HEADER_PAST_EOF', exit: 2, input: 'a header length past the end of the file', cli: inspectHeader('{}', 0, 100n)},
  {code: 'SAFETENSORS_HEADER_NOT_UTF8', exit: 2, input: 'header bytes ff fe', cli: inspectHeader('\xff\xfe')},
  {code: 'SAFETENSORS_HEADER_NOT_JSON', exit: 2, input: 'header {"a":', cli: inspectHeader('{"a":')},
  {code: 'SAFETENSORS_DUPLICATE_KEY', exit: 2, input: 'a tensor named twice', cli: inspectHeader(`{"t":${JSON.stringify(u8(0, 1))},"t":${JSON.stringify(u8(0, 1))}}`, 1)},
  {code: 'SAFETENSORS_HEADER_NOT_OBJECT', exit: 2, input: 'header []', cli: inspectHeader('[]')},
  {code: 'SAFETENSORS_BAD_METADATA', exit: 2, input: '__metadata__ a list', cli: inspectHeader({__metadata__: []})},
  {code: 'SAFETENSORS_BAD_TENSOR', exit: 2, input: 'a tensor entry that is a number', cli: inspectHeader({t: 1})},
  {code: 'SAFETENSORS_UNKNOWN_DTYPE', exit: 2, input: 'dtype "X9"', cli: inspectHeader({t: {dtype: 'X9', shape: [1], data_offsets: [0, 1]}}, 1)},
  {code: 'SAFETENSORS_BAD_SHAPE', exit: 2, input: 'shape [-1]', cli: inspectHeader({t: {dtype: 'U8', shape: [-1], data_offsets: [0, 1]}}, 1)},
  {code: 'SAFETENSORS_BAD_OFFSETS', exit: 2, input: 'data_offsets "x"', cli: inspectHeader({t: {dtype: 'U8', shape: [1], data_offsets: 'x'}}, 1)},
  {code: 'SAFETENSORS_OFFSETS_SIZE_MISMATCH', exit: 2, input: 'F32 [2] over 4 bytes', cli: inspectHeader({t: {dtype: 'F32', shape: [2], data_offsets: [0, 4]}}, 4)},
  {code: 'SAFETENSORS_OFFSETS_OUT_OF_BOUNDS', exit: 2, input: 'a tensor ending past the data', cli: inspectHeader({t: u8(0, 4)}, 2)},
  {code: 'SAFETENSORS_OFFSETS_OVERLAP', exit: 2, input: 'tensors [0, 4) and [2, 6)', cli: inspectHeader({a: u8(0, 4), b: u8(2, 6)}, 6)},
  {code: 'SAFETENSORS_OFFSETS_HOLE', exit: 2, input: 'data bytes [0, 2) owned by no tensor', cli: inspectHeader({t: u8(2, 4)}, 4)},
  {code: 'SAFETENSORS_TRAILING_BYTES', exit: 2, input: 'two bytes after the last tensor', cli: inspectHeader({t: u8(0, 2)}, 4)},
  {code: 'NOT_A_FILE', exit: 2, input: 'SafetensorsFile.open(/dev/null)', core: () => SafetensorsFile.open('/dev/null')},
  {code: 'TENSOR_NOT_FOUND', exit: 2, input: 'reading a tensor the file does not have', core: (dir) => closing(SafetensorsFile.open(writeSt(join(dir, 'x.safetensors'), [T])), (f) => f.info('nope'))},
  {
    code: 'TENSOR_TOO_LARGE_TO_READ',
    exit: 2,
    input: 'reading a 2 GiB + 8 byte tensor in one go (a sparse file)',
    core: async (dir) => {
      const n = 2 ** 31 + 8
      const header = Buffer.from(JSON.stringify({big: u8(0, n)}).padEnd(64, ' '))
      const prefix = Buffer.alloc(8)
      prefix.writeBigUInt64LE(BigInt(header.length))
      const path = await sparseFile(join(dir, 'big.safetensors'), 8 + header.length + n, Buffer.concat([prefix, header]))
      return closing(SafetensorsFile.open(path), (f) => f.readBytes('big'))
    },
  },

  // GGUF, through the reader (`lora quantize` and `merge` read GGUF only once the magic says GGUF)
  {code: 'GGUF_TOO_SHORT', exit: 2, input: '"GGUF" and 8 more bytes', core: openGguf(Buffer.concat([Buffer.from('GGUF'), Buffer.alloc(8)]))},
  {code: 'GGUF_BAD_MAGIC', exit: 2, input: 'magic 0x12345678', core: openGguf(gguf({magic: 0x12345678}))},
  {code: 'GGUF_BAD_VERSION', exit: 2, input: 'version 9', core: openGguf(gguf({version: 9}))},
  {code: 'GGUF_TOO_MANY_TENSORS', exit: 2, input: '2^40 tensors', core: openGguf(gguf({tensors: 2n ** 40n}))},
  {code: 'GGUF_TOO_MANY_KV', exit: 2, input: '2^40 metadata entries', core: openGguf(gguf({kvs: 2n ** 40n}))},
  {code: 'GGUF_TRUNCATED', exit: 2, input: 'one metadata entry announced, none there', core: openGguf(gguf({kvs: 1n}).subarray(0, 24))},
  {code: 'GGUF_STRING_TOO_LONG', exit: 2, input: 'a key of 2^40 bytes', core: openGguf(gguf({kvs: 1n, body: [g.u64(2n ** 40n)], data: 64}))},
  {code: 'GGUF_BAD_STRING', exit: 2, input: 'a key that is not UTF-8', core: openGguf(gguf({kvs: 1n, body: [g.str(Buffer.from([0xff, 0xfe])), g.u32(4), g.u32(1)]}))},
  {code: 'GGUF_DUPLICATE_KEY', exit: 2, input: 'the key "k" twice', core: openGguf(gguf({kvs: 2n, body: [g.kvU32('k', 1), g.kvU32('k', 2)]}))},
  {code: 'GGUF_BAD_VALUE_TYPE', exit: 2, input: 'value type 99', core: openGguf(gguf({kvs: 1n, body: [g.str('k'), g.u32(99), g.u64(0n)]}))},
  {code: 'GGUF_ARRAY_TOO_LONG', exit: 2, input: 'an array of 2^40 UINT8', core: openGguf(gguf({kvs: 1n, body: [g.str('k'), g.u32(9), g.u32(0), g.u64(2n ** 40n)]}))},
  {code: 'GGUF_BAD_VALUE', exit: 2, input: 'a BOOL holding 2', core: openGguf(gguf({kvs: 1n, body: [g.str('k'), g.u32(7), Buffer.from([2])]}))},
  {code: 'GGUF_BAD_ALIGNMENT', exit: 2, input: 'general.alignment 3', core: openGguf(gguf({kvs: 1n, body: [g.kvU32('general.alignment', 3)]}))},
  {code: 'GGUF_DUPLICATE_TENSOR', exit: 2, input: 'tensor "t" twice', core: openGguf(gguf({tensors: 2n, body: [g.tensor('t', [4n], 0, 0n), g.tensor('t', [4n], 0, 32n)], data: 64}))},
  {code: 'GGUF_TOO_MANY_DIMS', exit: 2, input: 'a 5-D tensor', core: openGguf(oneTensor([1n, 1n, 1n, 1n, 4n], 0, 0n))},
  {code: 'GGUF_BAD_SHAPE', exit: 2, input: 'ne [2^40, 2^40]', core: openGguf(oneTensor([2n ** 40n, 2n ** 40n], 0, 0n))},
  {code: 'GGUF_UNSUPPORTED_TYPE', exit: 2, input: 'GGML type 12 (Q4_K)', core: openGguf(oneTensor([256n], 12, 0n))},
  {code: 'GGUF_PARTIAL_BLOCK', exit: 2, input: 'a Q4_0 row of 4 elements', core: openGguf(oneTensor([4n], 2, 0n))},
  {code: 'GGUF_MISALIGNED', exit: 2, input: 'data offset 4', core: openGguf(oneTensor([4n], 0, 4n))},
  {code: 'GGUF_OVERLAP', exit: 2, input: 'two F32 [16] tensors at offsets 0 and 32', core: openGguf(gguf({tensors: 2n, body: [g.tensor('a', [16n], 0, 0n), g.tensor('b', [16n], 0, 32n)], data: 128}))},
  {code: 'GGUF_PAST_EOF', exit: 2, input: 'F32 [16] over 32 data bytes', core: openGguf(oneTensor([16n], 0, 0n, 32))},

  // sharded models, through `lora inspect FOLDER`
  {code: 'NOT_A_MODEL', exit: 2, input: 'an empty folder', cli: (dir) => ['inspect', dir]},
  {code: 'SHARD_INDEX_NOT_JSON', exit: 2, input: 'index text "{"', cli: inspectSharded('{')},
  {code: 'SHARD_INDEX_NO_WEIGHT_MAP', exit: 2, input: 'index {}', cli: inspectSharded({})},
  {code: 'SHARD_INDEX_BAD_ENTRY', exit: 2, input: 'weight_map {"w": 5}', cli: inspectSharded({weight_map: {w: 5}})},
  {code: 'SHARD_PATH_UNSAFE', exit: 2, input: 'a shard at ../x.safetensors', cli: inspectSharded({weight_map: {w: '../x.safetensors'}})},
  {code: 'SHARD_MISSING', exit: 2, input: 'a shard file that is not there', cli: inspectSharded({weight_map: {w: 'a.safetensors'}})},
  {code: 'SHARD_TENSOR_MISSING', exit: 2, input: 'weight_map puts "v" in a shard without it', cli: inspectSharded({weight_map: {v: 'a.safetensors'}}, {'a.safetensors': [T]})},
  {
    code: 'SHARD_INDEX_TOO_LARGE',
    exit: 2,
    input: 'a 65 MiB index (a sparse file)',
    cli: async (dir) => {
      await sparseFile(join(dir, 'model.safetensors.index.json'), 65 * 2 ** 20)
      return ['inspect', dir]
    },
  },

  // PEFT adapter folders, through `lora inspect ADAPTER` (and `lora merge --adapter`)
  {code: 'ADAPTER_NO_WEIGHTS', exit: 2, input: 'a config and no weights', cli: inspectAdapter(undefined)},
  {
    code: 'ADAPTER_PICKLE_ONLY',
    exit: 2,
    input: 'a config and adapter_model.bin',
    cli: (dir) => {
      const ad = writeAdapter(join(dir, 'ad'), undefined)
      writeFileSync(join(ad, 'adapter_model.bin'), 'pickle')
      return ['inspect', ad]
    },
  },
  {code: 'GIT_LFS_POINTER', exit: 2, input: 'adapter_config.json is a Git LFS pointer', cli: inspectAdapter([], 'version https://git-lfs.github.com/spec/v1\noid sha256:00\nsize 10\n')},
  {code: 'PEFT_CONFIG_INVALID', exit: 2, input: 'adapter_config.json "{"', cli: inspectAdapter([], '{')},
  {code: 'PEFT_NOT_LORA', exit: 2, input: 'peft_type IA3', cli: inspectAdapter([], {peft_type: 'IA3'})},
  {code: 'ADAPTER_KIND_CONFLICT', exit: 2, input: 'lora_A and lora_embedding_B on one module', cli: inspectAdapter([lora('m', 2, 4, 4)[0]!, {name: 'base_model.model.m.lora_embedding_B', dtype: 'F32', shape: [4, 2]}])},
  {code: 'ADAPTER_DUPLICATE_TENSOR', exit: 2, input: 'lora_A.weight and lora_A.default.weight on one module', cli: inspectAdapter([...lora('m', 2, 4, 4), {name: 'base_model.model.m.lora_A.default.weight', dtype: 'F32', shape: [2, 4]}])},
  {code: 'ADAPTER_DORA_UNSUPPORTED', exit: 2, input: 'use_dora: true', cli: inspectAdapter(lora('m', 2, 4, 4), {use_dora: true})},
  {code: 'ADAPTER_UNPAIRED', exit: 2, input: 'lora_A without lora_B', cli: inspectAdapter([lora('m', 2, 4, 4)[0]!])},
  {code: 'ADAPTER_UNSUPPORTED_LAYER', exit: 2, input: 'a 4-D (convolution) lora_A', cli: inspectAdapter([{...lora('m', 2, 4, 4)[0]!, shape: [2, 4, 1, 1]}, lora('m', 2, 4, 4)[1]!])},
  {code: 'ADAPTER_RANK_MISMATCH', exit: 2, input: 'r 2 in the config, A [3, 4]', cli: inspectAdapter(lora('m', 3, 4, 4))},
  {code: 'ADAPTER_DTYPE_MISMATCH', exit: 2, input: 'A in F32, B in F16', cli: inspectAdapter([lora('m', 2, 4, 4)[0]!, lora('m', 2, 4, 4, 'F16')[1]!])},
  {code: 'ADAPTER_NO_CONFIG', exit: 2, input: 'merge --adapter FOLDER holding only weights', cli: async (dir, fx) => (mkdirSync(join(dir, 'ad')), writeSt(join(dir, 'ad/adapter_model.safetensors'), lora('m', 2, 4, 4)), ['merge', '--base', await fx.base(), '--adapter', join(dir, 'ad'), '--out', join(dir, 'out')])},
  {code: 'ADAPTER_NOT_A_FOLDER', exit: 2, input: 'merge --adapter FILE', cli: async (dir, fx) => ['merge', '--base', await fx.base(), '--adapter', writeSt(join(dir, 'x.safetensors'), [T]), '--out', join(dir, 'out')]},
  {code: 'ADAPTER_MODULE_NOT_FOUND', exit: 2, input: 'asking an adapter for a module it does not have', core: (dir) => closing(LoraAdapter.load(writeAdapter(join(dir, 'ad'), lora('m', 2, 4, 4))), (a) => a.module('nope'))},

  // system errors: what the OS says, named with the file
  {code: 'IO_ENOENT', exit: 2, input: 'inspect a path that does not exist', cli: (dir) => ['inspect', join(dir, 'nope')]},
  {code: 'IO_ENOTDIR', exit: 2, input: 'inspect FILE/x', cli: (dir) => ['inspect', join(writeSt(join(dir, 'x.safetensors'), [T]), 'x')]},
  {code: 'IO_EISDIR', exit: 2, input: 'a system EISDIR (inputs open a folder non-blocking and say NOT_A_FILE first)', core: (dir) => { throw describeSystemError(Object.assign(new Error('EISDIR'), {code: 'EISDIR'}), 'read', dir) }},
  ...(['EACCES', 'EPERM', 'EEXIST', 'EROFS', 'EMFILE', 'ENOSPC', 'EDQUOT', 'EFBIG'] as const).map(
    (errno): ErrorCase => ({
      code: `IO_${errno}`,
      exit: 2,
      input: `the OS answers ${errno} (permissions, a full or read-only disk, a file-descriptor or size limit: not produced here, so the system error is handed to describeSystemError)`,
      core: () => {
        throw describeSystemError(Object.assign(new Error(`${errno}: simulated`), {code: errno}), 'write', '/some/file')
      },
    }),
  ),
  {
    code: 'INTERNAL',
    exit: 3,
    input: 'an error that is no LoraError (a bug), as every command\'s catch describes it (no input reaches one: `npm run fuzz` checks)',
    core: () => {
      const failure = describeFailure(new Error('boom'))
      throw Object.assign(new Error(failure.message), failure)
    },
  },
]
