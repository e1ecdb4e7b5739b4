import {readFileSync, writeFileSync} from 'node:fs'
import {join} from 'node:path'
import {suite} from 'uvu'
import * as assert from 'uvu/assert'
import {InputError} from '../../../src/core/errors.js'
import {GgufFile} from '../../../src/core/formats/gguf-reader.js'
import {GgufValueType} from '../../../src/core/formats/gguf-types.js'
import {GgufWriter, planGguf} from '../../../src/core/formats/gguf-writer.js'
import {quantizeQ4_0} from '../../../src/core/quant/q4-0.js'
import {Rng} from '../../../src/core/random.js'
import {decodeQ4_0, parseGguf} from '../../helpers/gguf-reference.js'
import {tempDir} from '../../helpers/index.js'

const test = suite('formats/gguf')

const kv = [
  {key: 'general.architecture', type: GgufValueType.STRING, value: 'llama'},
  {key: 'general.name', type: GgufValueType.STRING, value: 'tiny ü'},
  {key: 'general.file_type', type: GgufValueType.UINT32, value: 2},
  {key: 'test.f32', type: GgufValueType.FLOAT32, value: 0.5},
  {key: 'test.bool', type: GgufValueType.BOOL, value: true},
  {key: 'test.u64', type: GgufValueType.UINT64, value: 2n ** 40n},
  {key: 'test.list', type: GgufValueType.ARRAY, value: {itemType: GgufValueType.STRING, items: ['a', 'bc']}},
] as const

test('a written file parses with an independent reader: header, metadata, tensor infos, alignment, data', async () => {
  const dir = tempDir()
  try {
    const path = join(dir.path, 'm.gguf')
    const w = new Rng(1, 'gguf').fillNormal(new Float32Array(3 * 64))
    const q = quantizeQ4_0(w)
    const f32 = Float32Array.from([1, 2, 3, 4, 5, 6])
    const f16 = Uint16Array.from([0x3c00, 0xc000, 0x0000, 0x7bff, 0x0001])
    const writer = await GgufWriter.create(path, kv, [
      {name: 'a.weight', shape: [2, 3], type: 'F32'},
      {name: 'b.bias', shape: [5], type: 'F16'},
      {name: 'blk.0.q.weight', shape: [3, 64], type: 'Q4_0'},
    ])
    await writer.writeTensor('blk.0.q.weight', q)
    await writer.writeTensor('a.weight', new Uint8Array(f32.buffer))
    await writer.writeTensor('b.bias', new Uint8Array(f16.buffer))
    await writer.commit()

    const buf = readFileSync(path)
    const g = parseGguf(buf)
    assert.is(g.magic, 'GGUF')
    assert.is(g.version, 3)
    assert.is(g.kv.get('general.architecture')!.value, 'llama')
    assert.is(g.kv.get('general.name')!.value, 'tiny ü')
    assert.equal(g.kv.get('general.alignment'), {type: 4, value: 32})
    assert.equal(g.kv.get('general.file_type'), {type: 4, value: 2})
    assert.is(g.kv.get('test.f32')!.value, 0.5)
    assert.is(g.kv.get('test.bool')!.value, true)
    assert.is(g.kv.get('test.u64')!.value, 2n ** 40n)
    assert.equal(g.kv.get('test.list')!.value, ['a', 'bc'])
    assert.equal(
      g.tensors.map((t) => [t.name, t.ne.map(Number), t.type, Number(t.offset)]),
      [
        ['a.weight', [3, 2], 0, 0],
        ['b.bias', [5], 1, 32],
        ['blk.0.q.weight', [64, 3], 2, 64],
      ],
    )
    assert.is(g.dataStart % 32, 0)
    for (const t of g.tensors) assert.is(Number(t.offset) % 32, 0)
    const at = (i: number, n: number) => buf.subarray(g.dataStart + Number(g.tensors[i]!.offset), g.dataStart + Number(g.tensors[i]!.offset) + n)
    assert.equal([...new Float32Array(at(0, 24).buffer.slice(at(0, 24).byteOffset, at(0, 24).byteOffset + 24))], [...f32])
    assert.equal([...at(1, 10)], [...new Uint8Array(f16.buffer)])
    assert.equal([...at(2, 3 * 2 * 18)], [...q])
    assert.is(buf.length, g.dataStart + 64 + 128, 'the last tensor is padded to the alignment too')
    // the Q4_0 data dequantizes to the values our decoder gives, and close to the input
    const decoded = decodeQ4_0(at(2, 108), 192)
    for (let i = 0; i < 192; i++) assert.ok(Math.abs(decoded[i]! - w[i]!) < 0.25, `element ${i}`)

    const file = await GgufFile.open(path)
    try {
      assert.is(file.version, 3)
      assert.is(file.alignment, 32)
      assert.is(file.dataStart, g.dataStart)
      assert.equal(file.info('blk.0.q.weight').shape, [3, 64])
      assert.equal(file.info('blk.0.q.weight').ne, [64, 3])
      assert.is(file.info('blk.0.q.weight').type.name, 'Q4_0')
      assert.equal(await file.readBytes('blk.0.q.weight'), q)
      assert.is(file.value('test.u64'), 2n ** 40n)
      assert.equal(file.value('test.list'), {itemType: GgufValueType.STRING, items: ['a', 'bc']})
    } finally {
      await file.close()
    }
  } finally {
    dir.cleanup()
  }
})

test('a custom general.alignment places every tensor on that boundary', () => {
  const plan = planGguf([{key: 'general.alignment', type: GgufValueType.UINT32, value: 64}], [
    {name: 'x', shape: [3], type: 'F32'},
    {name: 'y', shape: [3], type: 'F32'},
  ])
  assert.is(plan.dataStart % 64, 0)
  assert.is(plan.tensors.get('y')!.offset, 64)
  assert.is(plan.fileSize, plan.dataStart + 128)
})

test('the writer refuses what llama.cpp cannot read: long names, 5-D tensors, rows that are not whole blocks', () => {
  const fails = (spec: {name: string; shape: number[]; type: 'F32' | 'Q4_0'}, code: string) =>
    assert.throws(() => planGguf([], [spec]), (e: unknown) => e instanceof InputError && e.code === code)
  fails({name: 'n'.repeat(64), shape: [4], type: 'F32'}, 'GGUF_NAME_TOO_LONG')
  fails({name: 'x', shape: [1, 1, 1, 1, 2], type: 'F32'}, 'GGUF_TOO_MANY_DIMS')
  fails({name: 'x', shape: [2, 48], type: 'Q4_0'}, 'GGUF_PARTIAL_BLOCK')
})

/** A minimal valid file with one F32 tensor of 4 elements, built by hand. */
function handMade(options: {magic?: number; version?: number; type?: number; offset?: number; dataBytes?: number; stringLength?: bigint} = {}): Buffer {
  const parts: Buffer[] = []
  const u32 = (v: number) => {
    const b = Buffer.alloc(4)
    b.writeUInt32LE(v)
    parts.push(b)
  }
  const u64 = (v: bigint) => {
    const b = Buffer.alloc(8)
    b.writeBigUInt64LE(v)
    parts.push(b)
  }
  u32(options.magic ?? 0x46554747)
  u32(options.version ?? 3)
  u64(1n)
  u64(1n)
  u64(options.stringLength ?? 4n)
  parts.push(Buffer.from('k.ey'))
  u32(4)
  u32(7)
  u64(1n)
  parts.push(Buffer.from('t'))
  u32(1)
  u64(4n)
  u32(options.type ?? 0)
  u64(BigInt(options.offset ?? 0))
  const head = Buffer.concat(parts)
  const padded = Math.ceil(head.length / 32) * 32
  return Buffer.concat([head, Buffer.alloc(padded - head.length), Buffer.alloc(options.dataBytes ?? 16)])
}

test('the reader refuses malformed files with one line naming the file', async () => {
  const dir = tempDir()
  try {
    const cases: Array<[string, Buffer, string]> = [
      ['ok', handMade(), ''],
      ['magic', handMade({magic: 0x12345678}), 'GGUF_BAD_MAGIC'],
      ['version', handMade({version: 9}), 'GGUF_BAD_VERSION'],
      ['type', handMade({type: 12}), 'GGUF_UNSUPPORTED_TYPE'],
      ['misaligned', handMade({offset: 4}), 'GGUF_MISALIGNED'],
      ['past-eof', handMade({dataBytes: 8}), 'GGUF_PAST_EOF'],
      ['string', handMade({stringLength: 2n ** 40n}), 'GGUF_STRING_TOO_LONG'],
      ['truncated', handMade().subarray(0, 40), 'GGUF_TRUNCATED'],
    ]
    for (const [name, bytes, code] of cases) {
      const path = join(dir.path, `${name}.gguf`)
      writeFileSync(path, bytes)
      if (code === '') {
        const f = await GgufFile.open(path)
        assert.equal(f.info('t').shape, [4])
        assert.is(f.value('k.ey'), 7)
        await f.close()
        continue
      }
      try {
        await GgufFile.open(path)
        assert.unreachable(`${name} should fail`)
      } catch (error) {
        assert.instance(error, InputError, name)
        assert.is((error as InputError).code, code, name)
        assert.ok((error as Error).message.startsWith(`read ${path}: `), (error as Error).message)
        assert.not.match((error as Error).message, /\n/)
      }
    }
  } finally {
    dir.cleanup()
  }
})

test.run()
