import {spawn} from 'node:child_process'
import {existsSync, readdirSync, readFileSync, writeFileSync} from 'node:fs'
import {open} from 'node:fs/promises'
import {join} from 'node:path'
import {suite} from 'uvu'
import * as assert from 'uvu/assert'
import {DTYPES, DTYPE_NAMES, DType} from '../../../src/core/dtype.js'
import {InputError, UsageError} from '../../../src/core/errors.js'
import {SafetensorsFile} from '../../../src/core/formats/safetensors-file.js'
import {planFile} from '../../../src/core/formats/safetensors-header.js'
import {SafetensorsWriter, writeSafetensors} from '../../../src/core/formats/safetensors-writer.js'
import {REPO_ROOT, rejection, tempDir} from '../../helpers/index.js'

const test = suite('safetensors')

/** A header JSON string turned into file bytes: u64 length + JSON + data. */
function fileBytes(header: string, data: Uint8Array = new Uint8Array(0), lengthOverride?: bigint): Uint8Array {
  const json = new TextEncoder().encode(header)
  const out = new Uint8Array(8 + json.length + data.length)
  new DataView(out.buffer).setBigUint64(0, lengthOverride ?? BigInt(json.length), true)
  out.set(json, 8)
  out.set(data, 8 + json.length)
  return out
}

async function openBytes(bytes: Uint8Array): Promise<SafetensorsFile> {
  const dir = tempDir()
  const path = join(dir.path, 'x.safetensors')
  writeFileSync(path, bytes)
  try {
    return await SafetensorsFile.open(path)
  } finally {
    dir.cleanup()
  }
}

function sampleData(dtype: DType, count: number): Uint8Array {
  const info = DTYPES[dtype]
  const bytes = new Uint8Array(count * info.bytes)
  switch (dtype) {
    case 'F64':
      bytes.set(new Uint8Array(new Float64Array([Number.NaN, Infinity, -0, 1e300].slice(0, count)).buffer))
      break
    case 'F32':
      bytes.set(new Uint8Array(new Float32Array([Number.NaN, -Infinity, -0, 3.5].slice(0, count)).buffer))
      break
    case 'F16':
    case 'BF16':
      // NaN, +Inf, -0, and an ordinary value, as bit patterns
      bytes.set(new Uint8Array(new Uint16Array((dtype === 'F16' ? [0x7e00, 0x7c00, 0x8000, 0x3c00] : [0x7fc0, 0x7f80, 0x8000, 0x3f80]).slice(0, count)).buffer))
      break
    default:
      for (let i = 0; i < bytes.length; i++) bytes[i] = (i * 37 + 11) & 0xff
      if (dtype === 'BOOL') for (let i = 0; i < bytes.length; i++) bytes[i] = i & 1
  }
  return bytes
}

test('write → read round trip of every dtype, scalars and zero-size tensors, byte for byte', async () => {
  const dir = tempDir()
  try {
    const tensors = DTYPE_NAMES.flatMap((dtype) => [
      {name: `${dtype}.vec`, dtype, shape: [2, 2], data: sampleData(dtype, 4)},
      {name: `${dtype}.scalar`, dtype, shape: [] as number[], data: sampleData(dtype, 1)},
      {name: `${dtype}.empty`, dtype, shape: [0, 3], data: new Uint8Array(0)},
    ])
    const path = join(dir.path, 'all.safetensors')
    await writeSafetensors(path, tensors, {metadata: {format: 'pt', note: 'ünïcode ✓'}})
    const file = await SafetensorsFile.open(path)
    try {
      assert.is(file.metadata.get('note'), 'ünïcode ✓')
      assert.is((8 + file.headerLength) % 8, 0, 'data section is 8-byte aligned')
      for (const t of tensors) {
        // raw bytes: the samples hold NaN and ±Infinity, which readTensor (a read for computation) refuses
        const read = await file.readBytes(t.name)
        assert.is(file.info(t.name).dtype, t.dtype)
        assert.equal(file.info(t.name).shape, t.shape)
        assert.equal([...read], [...t.data], t.name)
      }
    } finally {
      await file.close()
    }
  } finally {
    dir.cleanup()
  }
})

test('the worked example in docs/formats.md is byte-exact', async () => {
  const dir = tempDir()
  try {
    const path = join(dir.path, 'w.safetensors')
    await writeSafetensors(path, [{name: 'w', dtype: 'F16', shape: [2], data: new Uint16Array([0x3c00, 0xc000])}])
    const hex = [...readFileSync(path)].map((b) => b.toString(16).padStart(2, '0')).join(' ')
    const doc = readFileSync(join(REPO_ROOT, 'docs/formats.md'), 'utf8')
    const block = doc.slice(doc.indexOf('00000000  38 00'), doc.indexOf('00 3c 00 c0') + 11)
    const documented = block
      .split('\n')
      .map((line) => line.slice(10, 57).trim())
      .join(' ')
      .replace(/\s+/g, ' ')
    assert.is(hex, documented)
  } finally {
    dir.cleanup()
  }
})

test('reads a row range with one positional read', async () => {
  const dir = tempDir()
  try {
    const path = join(dir.path, 'm.safetensors')
    const values = Float32Array.from({length: 12}, (_, i) => i)
    await writeSafetensors(path, [{name: 'm', dtype: 'F32', shape: [4, 3], data: values}])
    const file = await SafetensorsFile.open(path)
    const rows = await file.readRows('m', 1, 2)
    assert.equal(rows.shape, [2, 3])
    assert.equal([...rows.toFloat32()], [3, 4, 5, 6, 7, 8])
    await file.close()
  } finally {
    dir.cleanup()
  }
})

test('a tensor past 4 GiB in a sparse file reads correctly', async () => {
  const dir = tempDir()
  try {
    const path = join(dir.path, 'big.safetensors')
    const padBytes = 4.5 * 2 ** 30
    const specs = [
      {name: 'zeros', dtype: 'U8' as const, shape: [padBytes]},
      {name: 'tail', dtype: 'F32' as const, shape: [3]},
    ]
    // plan the file, then write only the header and the last tensor: the rest stays a hole
    const plan = planFile(specs)
    const handle = await open(path, 'w')
    await handle.truncate(plan.fileSize)
    await handle.write(plan.headerBytes, 0, plan.headerBytes.length, 0)
    const tail = new Float32Array([1.5, -2.25, 1e-3])
    await handle.write(new Uint8Array(tail.buffer), 0, 12, plan.dataStart + padBytes)
    await handle.close()
    const file = await SafetensorsFile.open(path)
    assert.ok(file.bytes > 2 ** 32)
    assert.equal([...(await file.readTensor('tail')).toFloat32()], [...tail])
    const lastRow = await file.readRows('zeros', padBytes - 4, 4)
    assert.equal([...lastRow.bytes], [0, 0, 0, 0])
    await file.close()
  } finally {
    dir.cleanup()
  }
})

test('the streaming writer accepts tensors in any order and in pieces', async () => {
  const dir = tempDir()
  try {
    const path = join(dir.path, 'w.safetensors')
    const writer = await SafetensorsWriter.create(path, [
      {name: 'a', dtype: 'F32', shape: [2, 2]},
      {name: 'b', dtype: 'U8', shape: [3]},
    ])
    await writer.writeTensor('b', new Uint8Array([7, 8, 9]))
    await writer.writeTensorBytes('a', 8, new Float32Array([3, 4]))
    assert.not.ok(existsSync(path), 'nothing under the final name before commit')
    await writer.commit()
    const file = await SafetensorsFile.open(path)
    assert.equal([...(await file.readTensor('a')).toFloat32()], [0, 0, 3, 4], 'unwritten ranges read as zero')
    assert.equal([...(await file.readTensor('b')).bytes], [7, 8, 9])
    await file.close()
  } finally {
    dir.cleanup()
  }
})

test('the writer refuses to overwrite unless forced', async () => {
  const dir = tempDir()
  try {
    const path = join(dir.path, 'w.safetensors')
    writeFileSync(path, 'keep me')
    try {
      await writeSafetensors(path, [{name: 'x', dtype: 'U8', shape: [1], data: new Uint8Array([1])}])
      assert.unreachable()
    } catch (error) {
      assert.instance(error, UsageError)
      assert.match((error as Error).message, /already exists \(use --force/)
    }
    assert.is(readFileSync(path, 'utf8'), 'keep me')
    await writeSafetensors(path, [{name: 'x', dtype: 'U8', shape: [1], data: new Uint8Array([1])}], {force: true})
    const file = await SafetensorsFile.open(path)
    assert.is(file.tensors.size, 1)
    await file.close()
  } finally {
    dir.cleanup()
  }
})

test('an error mid-write leaves neither the final file nor a temporary one', async () => {
  const dir = tempDir()
  try {
    const path = join(dir.path, 'w.safetensors')
    const writer = await SafetensorsWriter.create(path, [{name: 'a', dtype: 'F32', shape: [4]}])
    await writer.writeTensorBytes('a', 0, new Float32Array([1]))
    assert.match((await rejection(writer.writeTensor('a', new Float32Array(3)))).message, /needs 16 bytes, got 12/)
    await writer.abort()
    assert.equal(readdirSync(dir.path), [])
  } finally {
    dir.cleanup()
  }
})

test('a process killed mid-write leaves no file under the final name', async () => {
  const dir = tempDir()
  try {
    const path = join(dir.path, 'killed.safetensors')
    const script = `
      import {SafetensorsWriter} from ${JSON.stringify(join(REPO_ROOT, 'dist/src/core/formats/safetensors-writer.js'))}
      const w = await SafetensorsWriter.create(${JSON.stringify(path)}, [{name: 'a', dtype: 'F32', shape: [1 << 20]}])
      await w.writeTensorBytes('a', 0, new Float32Array(1024))
      process.stdout.write('writing\\n')
      setInterval(() => {}, 1000)
    `
    for (const signal of ['SIGKILL', 'SIGINT'] as const) {
      // SIGKILL cannot be caught: its temporary file may stay, but never under the final name
      const child = spawn(process.execPath, ['--input-type=module', '-e', script], {stdio: ['ignore', 'pipe', 'inherit']})
      await new Promise<void>((resolve) => child.stdout.once('data', () => resolve()))
      const exited = new Promise((resolve) => child.once('exit', resolve))
      child.kill(signal)
      await exited
      assert.not.ok(existsSync(path), `no final file after ${signal}`)
      if (signal === 'SIGINT') {
        const leftovers = readdirSync(dir.path).filter((f) => f.includes(`tmp-${child.pid}-`))
        assert.equal(leftovers, [], 'SIGINT also removes the temporary file')
      }
    }
  } finally {
    dir.cleanup()
  }
})

// ------------------------------------------------------------------ malformed headers, one row per case

const ok = '{"t":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}}'
const four = new Uint8Array(4)
const cases: Array<{name: string; bytes: Uint8Array; code: string; message: RegExp}> = [
  {name: 'file shorter than 8 bytes', bytes: new Uint8Array([13, 10]), code: 'SAFETENSORS_TOO_SHORT', message: /2 bytes, shorter than the 8-byte/},
  {name: 'header length larger than 100 MB', bytes: fileBytes(ok, four, 200_000_000n), code: 'SAFETENSORS_HEADER_TOO_LARGE', message: /larger than the 100000000-byte limit/},
  {name: 'Git LFS pointer', bytes: new TextEncoder().encode('version https://git-lfs.github.com/spec/v1\noid sha256:abc\nsize 1\n'), code: 'SAFETENSORS_HEADER_TOO_LARGE', message: /Git LFS pointer/},
  {name: 'header length past the end of the file', bytes: fileBytes(ok, four, 1000n), code: 'SAFETENSORS_HEADER_PAST_EOF', message: /runs past the end of the file/},
  {name: 'header not UTF-8', bytes: fileBytes('{"\xff":1}'.replace('\xff', '\u00ff')).map((b, i) => (i === 10 ? 0xff : b)), code: 'SAFETENSORS_HEADER_NOT_UTF8', message: /not valid UTF-8/},
  {name: 'header not JSON', bytes: fileBytes('{"t":'), code: 'SAFETENSORS_HEADER_NOT_JSON', message: /not valid JSON/},
  {name: 'header not an object', bytes: fileBytes('[1,2]'), code: 'SAFETENSORS_HEADER_NOT_OBJECT', message: /not an object/},
  {name: 'unknown dtype', bytes: fileBytes('{"t":{"dtype":"F128","shape":[1],"data_offsets":[0,16]}}', new Uint8Array(16)), code: 'SAFETENSORS_UNKNOWN_DTYPE', message: /unknown dtype "F128"/},
  {name: 'negative dim', bytes: fileBytes('{"t":{"dtype":"F32","shape":[-1],"data_offsets":[0,4]}}', four), code: 'SAFETENSORS_BAD_SHAPE', message: /non-negative integer/},
  {name: 'fractional dim', bytes: fileBytes('{"t":{"dtype":"F32","shape":[1.5],"data_offsets":[0,4]}}', four), code: 'SAFETENSORS_BAD_SHAPE', message: /non-negative integer/},
  {name: 'non-integer dim', bytes: fileBytes('{"t":{"dtype":"F32","shape":["1"],"data_offsets":[0,4]}}', four), code: 'SAFETENSORS_BAD_SHAPE', message: /non-negative integer/},
  {name: 'offsets not matching dtype × shape', bytes: fileBytes('{"t":{"dtype":"F32","shape":[2],"data_offsets":[0,4]}}', four), code: 'SAFETENSORS_OFFSETS_SIZE_MISMATCH', message: /\(4 bytes\) but F32 \[2\] needs 8 bytes/},
  {name: 'offsets out of file bounds', bytes: fileBytes('{"t":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}}', four), code: 'SAFETENSORS_OFFSETS_OUT_OF_BOUNDS', message: /past the end of the data \(4 bytes\)/},
  {name: 'overlapping offsets', bytes: fileBytes('{"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},"b":{"dtype":"F32","shape":[1],"data_offsets":[2,6]}}', new Uint8Array(8)), code: 'SAFETENSORS_OFFSETS_OVERLAP', message: /overlaps tensor "a"/},
  {name: 'hole between tensors', bytes: fileBytes('{"a":{"dtype":"U8","shape":[1],"data_offsets":[0,1]},"b":{"dtype":"U8","shape":[1],"data_offsets":[2,3]}}', new Uint8Array(3)), code: 'SAFETENSORS_OFFSETS_HOLE', message: /\[1, 2\) belong to no tensor/},
  {name: 'trailing bytes', bytes: fileBytes(ok, new Uint8Array(6)), code: 'SAFETENSORS_TRAILING_BYTES', message: /2 bytes after the last tensor/},
  {name: 'repeated tensor key', bytes: fileBytes('{"t":{"dtype":"U8","shape":[1],"data_offsets":[0,1]},"t":{"dtype":"U8","shape":[1],"data_offsets":[0,1]}}', new Uint8Array(1)), code: 'SAFETENSORS_DUPLICATE_KEY', message: /key "t" appears twice/},
  {name: 'repeated key inside __metadata__', bytes: fileBytes('{"__metadata__":{"a":"1","a":"2"}}'), code: 'SAFETENSORS_DUPLICATE_KEY', message: /key "a" appears twice/},
  {name: 'repeated __metadata__', bytes: fileBytes('{"__metadata__":{},"__metadata__":{}}'), code: 'SAFETENSORS_DUPLICATE_KEY', message: /appears twice/},
  {name: 'repeated key spelled with an escape', bytes: fileBytes('{"t":{"dtype":"U8","shape":[1],"data_offsets":[0,1]},"\\u0074":{"dtype":"U8","shape":[1],"data_offsets":[0,1]}}', new Uint8Array(1)), code: 'SAFETENSORS_DUPLICATE_KEY', message: /appears twice/},
  {name: 'non-string __metadata__ value', bytes: fileBytes('{"__metadata__":{"n":1}}'), code: 'SAFETENSORS_BAD_METADATA', message: /value for "n" is not a string \(got number\)/},
  {name: 'deeply nested JSON', bytes: fileBytes(`{"t":${'['.repeat(5000)}${']'.repeat(5000)}}`), code: 'SAFETENSORS_HEADER_NOT_JSON', message: /nesting deeper/},
]

for (const c of cases) {
  test(`malformed: ${c.name} → ${c.code}`, async () => {
    try {
      await openBytes(c.bytes)
      assert.unreachable('should have thrown')
    } catch (error) {
      assert.instance(error, InputError)
      const e = error as InputError
      assert.is(e.code, c.code)
      assert.is(e.exitCode, 2)
      assert.match(e.message, c.message)
      assert.match(e.message, /^read .*x\.safetensors: /)
      assert.not.match(e.message, /\n/)
    }
  })
}

test('tensor names such as __proto__ and constructor are ordinary names', async () => {
  const file = await openBytes(
    fileBytes('{"__proto__":{"dtype":"U8","shape":[1],"data_offsets":[0,1]},"constructor":{"dtype":"U8","shape":[1],"data_offsets":[1,2]},"__metadata__":{"__proto__":"x"}}', new Uint8Array([5, 6])),
  )
  assert.equal([...file.tensors.keys()], ['__proto__', 'constructor'])
  assert.is(file.metadata.get('__proto__'), 'x')
  assert.is(({} as Record<string, unknown>).dtype, undefined, 'no prototype pollution')
  await file.close()
})

test('padding spaces after the JSON are accepted', async () => {
  const file = await openBytes(fileBytes(`${ok}     `, four))
  assert.is(file.tensors.size, 1)
  await file.close()
})

test.run()
