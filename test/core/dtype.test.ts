import onnxProto from 'onnx-proto'
import {suite} from 'uvu'
import * as assert from 'uvu/assert'
import {
  DTYPES,
  DTYPE_NAMES,
  convertFloat,
  dtypeFromGgml,
  dtypeFromOnnx,
  dtypeFromTorch,
  f16ToF32Table,
  floatDecoder,
  f16BitsToNumber,
  f32BitsToBf16Bits,
  f32BitsToF16Bits,
  f8e4m3BitsToNumber,
  f8e5m2BitsToNumber,
  fromFloat,
  numberToF16Bits,
  toFloat32,
  toFloat64,
  typedView,
} from '../../src/core/dtype.js'
import {GGML_TYPES, GgmlTypeName} from '../../src/core/formats/gguf-types.js'

const test = suite('dtype')

const f32bits = (x: number) => {
  const f = new Float32Array([x])
  return new Uint32Array(f.buffer)[0]!
}

test('the table lists every safetensors dtype with its size', () => {
  assert.equal([...DTYPE_NAMES].sort(), ['BF16', 'BOOL', 'F16', 'F32', 'F64', 'F8_E4M3', 'F8_E5M2', 'I16', 'I32', 'I64', 'I8', 'U16', 'U32', 'U64', 'U8'])
  assert.is(DTYPES.F64.bytes, 8)
  assert.is(DTYPES.BF16.bytes, 2)
  assert.is(DTYPES.F8_E5M2.bytes, 1)
  assert.is(DTYPES.BOOL.bytes, 1)
  assert.is(DTYPES.U64.bytes, 8)
})

test('F16 encodes known values to their published bit patterns', () => {
  const cases: Array<[number, number]> = [
    [0, 0x0000],
    [-0, 0x8000],
    [1, 0x3c00],
    [-2, 0xc000],
    [65504, 0x7bff], // largest finite
    [2 ** -14, 0x0400], // smallest normal
    [2 ** -24, 0x0001], // smallest subnormal
    [0.333251953125, 0x3555],
    [Infinity, 0x7c00],
    [-Infinity, 0xfc00],
    [1e6, 0x7c00], // overflow → Inf
  ]
  for (const [value, bits] of cases) assert.is(numberToF16Bits(value), bits, `f16(${value})`)
})

test('F16 rounds to nearest, ties to even', () => {
  // 1 + 2^-11 is exactly half way between 1 (0x3c00, even) and 1 + 2^-10 (0x3c01): ties go to even
  assert.is(numberToF16Bits(1 + 2 ** -11), 0x3c00)
  // 1 + 3·2^-11 is half way between 0x3c01 (odd) and 0x3c02 (even)
  assert.is(numberToF16Bits(1 + 3 * 2 ** -11), 0x3c02)
  // just above the tie rounds up
  assert.is(f32BitsToF16Bits(f32bits(1 + 2 ** -11) + 1), 0x3c01)
  // 65520 is the tie between 65504 and the next step (65536 = Inf): ties to even → Inf
  assert.is(numberToF16Bits(65520), 0x7c00)
  assert.is(numberToF16Bits(65519), 0x7bff)
  // subnormal tie: 2^-25 is half of the smallest subnormal → 0 (even)
  assert.is(numberToF16Bits(2 ** -25), 0x0000)
  assert.is(numberToF16Bits(3 * 2 ** -25), 0x0002)
})

test('F16 keeps NaN a NaN', () => {
  const bits = numberToF16Bits(Number.NaN)
  assert.is(bits & 0x7c00, 0x7c00)
  assert.ok((bits & 0x3ff) !== 0)
  assert.ok(Number.isNaN(f16BitsToNumber(bits)))
})

test('every F16 bit pattern survives decode → encode', () => {
  for (let h = 0; h < 65536; h++) {
    const v = f16BitsToNumber(h)
    if (Number.isNaN(v)) continue
    assert.is(numberToF16Bits(v), h)
  }
})

test('BF16 encodes with round-to-nearest-even and keeps NaN', () => {
  assert.is(f32BitsToBf16Bits(f32bits(1)), 0x3f80)
  assert.is(f32BitsToBf16Bits(f32bits(-2)), 0xc000)
  // 1 + 2^-8 is the tie between 0x3f80 (even) and 0x3f81: → 0x3f80
  assert.is(f32BitsToBf16Bits(f32bits(1 + 2 ** -8)), 0x3f80)
  // 1 + 3·2^-8: tie between 0x3f81 and 0x3f82 (even)
  assert.is(f32BitsToBf16Bits(f32bits(1 + 3 * 2 ** -8)), 0x3f82)
  assert.is(f32BitsToBf16Bits(f32bits(Infinity)), 0x7f80)
  assert.is(f32BitsToBf16Bits(f32bits(-0)), 0x8000)
  const nan = f32BitsToBf16Bits(0x7f800001) // a signalling NaN whose payload is in the low bits only
  assert.is(nan & 0x7f80, 0x7f80)
  assert.ok((nan & 0x7f) !== 0, 'NaN must not become Inf')
  // 3.4e38 rounds up past the largest bf16 → Inf
  assert.is(f32BitsToBf16Bits(f32bits(3.4e38)), 0x7f80)
})

test('float64 → F16 has no double rounding (round to odd through f32)', () => {
  // 1 + 2^-11 + 2^-40 is just above the f16 tie; through plain f32 it would round to the tie, then to even (1.0)
  const x = 1 + 2 ** -11 + 2 ** -40
  const bits = new Uint16Array(fromFloat('F16', new Float64Array([x])).buffer)
  assert.is(bits[0], 0x3c01)
  const bf = new Uint16Array(fromFloat('BF16', new Float64Array([1 + 2 ** -8 + 2 ** -40])).buffer)
  assert.is(bf[0], 0x3f81)
})

test('F8 decoders give the formats\' known values', () => {
  assert.is(f8e4m3BitsToNumber(0x7e), 448) // max of E4M3FN
  assert.ok(Number.isNaN(f8e4m3BitsToNumber(0x7f)))
  assert.is(f8e4m3BitsToNumber(0x38), 1)
  assert.is(f8e4m3BitsToNumber(0x01), 2 ** -9)
  assert.is(f8e5m2BitsToNumber(0x3c), 1)
  assert.is(f8e5m2BitsToNumber(0x7b), 57344)
  assert.is(f8e5m2BitsToNumber(0x7c), Infinity)
  assert.ok(Number.isNaN(f8e5m2BitsToNumber(0x7d)))
})

test('toFloat32 / toFloat64 decode every dtype by value', () => {
  const u8 = (values: number[], Ctor: {new (v: number[]): ArrayBufferView}) => new Uint8Array((new Ctor(values) as ArrayBufferView & {buffer: ArrayBuffer}).buffer)
  assert.equal([...toFloat32('I16', u8([-3, 7], Int16Array))], [-3, 7])
  assert.equal([...toFloat64('U32', u8([4000000000], Uint32Array))], [4000000000])
  assert.equal([...toFloat64('I64', new Uint8Array(new BigInt64Array([-5n, 2n ** 40n]).buffer))], [-5, 2 ** 40])
  assert.equal([...toFloat32('BF16', new Uint8Array(new Uint16Array([0x3f80, 0xc000]).buffer))], [1, -2])
  assert.equal([...toFloat32('BOOL', new Uint8Array([0, 1]))], [0, 1])
})

test('convertFloat from F64 rounds once: 1 + 2^-11 + 2^-40 goes up to the next F16 (through F32 it would tie down to 1)', () => {
  const x = new Float64Array([1 + 2 ** -11 + 2 ** -40, -(1 + 2 ** -11 + 2 ** -40)])
  assert.equal([...new Uint16Array(convertFloat('F64', 'F16', new Uint8Array(x.buffer)).slice().buffer)], [0x3c01, 0xbc01])
  // the same value through float32 loses 2^-40 and ties to even
  assert.is(numberToF16Bits(Math.fround(x[0]!)), 0x3c00)
})

test('convertFloat round-trips F32 → F16 → F32 for representable values, NaN/Inf/-0 included', () => {
  const values = new Float32Array([0, -0, 1.5, -65504, Infinity, -Infinity, Number.NaN, 2 ** -24])
  const back = toFloat32('F16', convertFloat('F32', 'F16', new Uint8Array(values.buffer)))
  for (let i = 0; i < values.length; i++) {
    if (Number.isNaN(values[i]!)) assert.ok(Number.isNaN(back[i]!))
    else assert.ok(Object.is(back[i], values[i]), `${values[i]} → ${back[i]}`)
  }
})

test('typedView copies unaligned bytes instead of failing', () => {
  const buf = new Uint8Array(9)
  buf.set(new Uint8Array(new Float32Array([1.25, -3]).buffer), 1)
  const view = typedView('F32', buf.subarray(1)) as Float32Array
  assert.equal([...view], [1.25, -3])
  assert.throws(() => typedView('F32', new Uint8Array(3)), /whole number/)
})

test('one table, every vocabulary: torch, ONNX (TensorProto codes and onnxruntime names) and GGML names map back to the dtype', () => {
  const codes = onnxProto.onnx.TensorProto.DataType as unknown as Record<string, number>
  const onnxEnum: Record<string, string> = {F64: 'DOUBLE', F32: 'FLOAT', F16: 'FLOAT16', BF16: 'BFLOAT16', F8_E4M3: 'FLOAT8E4M3FN', F8_E5M2: 'FLOAT8E5M2'}
  for (const d of DTYPE_NAMES) {
    const info = DTYPES[d]
    assert.is(dtypeFromTorch(info.torch), d, info.torch)
    assert.is(dtypeFromOnnx(info.onnx.name), d, info.onnx.name)
    const name = onnxEnum[d] ?? (d === 'BOOL' ? 'BOOL' : d.replace(/^I/, 'INT').replace(/^U/, 'UINT'))
    // onnx-proto 8 predates the float8 types; their codes are from onnx.proto (IR version 9)
    assert.is(info.onnx.code, codes[name] ?? {FLOAT8E4M3FN: 17, FLOAT8E5M2: 19}[name], `${d}: ONNX code of ${name}`)
    if (info.ggml !== undefined) {
      assert.is(dtypeFromGgml(info.ggml), d)
      const g = GGML_TYPES[info.ggml as GgmlTypeName]
      assert.equal([g.blockSize, g.typeSize], [1, info.bytes], `${d}: GGML ${info.ggml}`)
    }
  }
  assert.equal([DTYPES.F16.torch, DTYPES.BF16.torch, DTYPES.F32.torch], ['float16', 'bfloat16', 'float32'])
  assert.is(dtypeFromGgml('Q4_0'), undefined)
})

test('the one f16 table holds every binary16 value, and floatDecoder decodes into float64 as toFloat64 does', () => {
  const table = f16ToF32Table()
  assert.is(table, f16ToF32Table(), 'built once')
  for (let h = 0; h < 65536; h++) {
    const v = f16BitsToNumber(h)
    assert.ok(Object.is(table[h], v) || (Number.isNaN(v) && Number.isNaN(table[h]!)), `bits ${h}`)
  }
  const bits = new Uint16Array(65536).map((_, i) => i)
  const bytes = new Uint8Array(bits.buffer)
  for (const d of ['F16', 'BF16'] as const) {
    const out = new Float64Array(65536 + 3)
    floatDecoder(d, bytes)(0, 65536, out, 3)
    const want = toFloat64(d, bytes)
    for (let i = 0; i < 65536; i++) assert.ok(Object.is(out[i + 3], want[i]) || (Number.isNaN(want[i]!) && Number.isNaN(out[i + 3]!)), `${d} bits ${i}`)
  }
})

test.run()
