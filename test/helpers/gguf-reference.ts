/**
 * An independent GGUF reader and Q4_0 decoder, written from the GGUF
 * specification and ggml's block layout, sharing no code with src/.
 */

export interface Parsed {
  magic: string
  version: number
  kv: Map<string, {type: number; value: unknown}>
  tensors: Array<{name: string; ne: bigint[]; type: number; offset: bigint}>
  dataStart: number
}

export function parseGguf(buf: Buffer): Parsed {
  let p = 0
  const u32 = () => ((p += 4), buf.readUInt32LE(p - 4))
  const u64 = () => ((p += 8), buf.readBigUInt64LE(p - 8))
  const str = () => {
    const n = Number(u64())
    p += n
    return buf.toString('utf8', p - n, p)
  }
  const value = (t: number): unknown => {
    switch (t) {
      case 0: return buf.readUInt8((p += 1) - 1)
      case 1: return buf.readInt8((p += 1) - 1)
      case 2: return buf.readUInt16LE((p += 2) - 2)
      case 3: return buf.readInt16LE((p += 2) - 2)
      case 4: return u32()
      case 5: return buf.readInt32LE((p += 4) - 4)
      case 6: return buf.readFloatLE((p += 4) - 4)
      case 7: return buf.readUInt8((p += 1) - 1) === 1
      case 8: return str()
      case 9: {
        const it = u32()
        const n = Number(u64())
        return Array.from({length: n}, () => value(it))
      }
      case 10: return u64()
      case 11: return buf.readBigInt64LE((p += 8) - 8)
      case 12: return buf.readDoubleLE((p += 8) - 8)
      default: throw new Error(`type ${t}`)
    }
  }
  const magic = buf.toString('latin1', 0, 4)
  p = 4
  const version = u32()
  const nt = Number(u64())
  const nkv = Number(u64())
  const kv = new Map<string, {type: number; value: unknown}>()
  for (let i = 0; i < nkv; i++) {
    const k = str()
    const t = u32()
    kv.set(k, {type: t, value: value(t)})
  }
  const tensors = []
  for (let i = 0; i < nt; i++) {
    const name = str()
    const nd = u32()
    const ne = Array.from({length: nd}, () => u64())
    tensors.push({name, ne, type: u32(), offset: u64()})
  }
  const align = Number((kv.get('general.alignment')?.value as number | undefined) ?? 32)
  return {magic, version, kv, tensors, dataStart: Math.ceil(p / align) * align}
}

/** Q4_0 decoding written from the ggml block layout (f16 d, 16 bytes of nibbles). */
export function decodeQ4_0(bytes: Buffer, count: number): number[] {
  const f16 = (h: number) => {
    const e = (h >> 10) & 31
    const m = h & 1023
    const v = e === 0 ? m * 2 ** -24 : (1 + m / 1024) * 2 ** (e - 15)
    return h & 0x8000 ? -v : v
  }
  const out: number[] = []
  for (let b = 0; b < count / 32; b++) {
    const d = f16(bytes.readUInt16LE(b * 18))
    const lo: number[] = []
    const hi: number[] = []
    for (let j = 0; j < 16; j++) {
      const q = bytes[b * 18 + 2 + j]!
      lo.push(((q & 15) - 8) * d)
      hi.push(((q >> 4) - 8) * d)
    }
    out.push(...lo, ...hi)
  }
  return out.map(Math.fround)
}


function f16Value(h: number): number {
  const e = (h >> 10) & 31
  const m = h & 1023
  const v = e === 0 ? m * 2 ** -24 : e === 31 ? (m ? NaN : Infinity) : (1 + m / 1024) * 2 ** (e - 15)
  return h & 0x8000 ? -v : v
}

/** Q8_0 decoding written from the ggml block layout (f16 d, 32 int8). */
export function decodeQ8_0(bytes: Buffer, count: number): number[] {
  const out: number[] = []
  for (let b = 0; b < count / 32; b++) {
    const d = f16Value(bytes.readUInt16LE(b * 34))
    for (let j = 0; j < 32; j++) out.push(Math.fround(bytes.readInt8(b * 34 + 2 + j) * d))
  }
  return out
}

/** GGML type ids this reader decodes: F32 0, F16 1, Q4_0 2, Q8_0 8, BF16 30. */
export const GGML_TYPE_NAMES: Readonly<Record<number, string>> = {0: 'F32', 1: 'F16', 2: 'Q4_0', 8: 'Q8_0', 30: 'BF16'}

/** Every tensor of a GGUF file decoded to float64, with its row-major shape (ne reversed) and GGML type name. */
export function readGgufF64(buf: Buffer): {parsed: Parsed; tensors: Map<string, {shape: number[]; type: string; values: Float64Array}>} {
  const parsed = parseGguf(buf)
  const tensors = new Map<string, {shape: number[]; type: string; values: Float64Array}>()
  for (const t of parsed.tensors) {
    const ne = t.ne.map(Number)
    const count = ne.reduce((a, b) => a * b, 1)
    const at = parsed.dataStart + Number(t.offset)
    const type = GGML_TYPE_NAMES[t.type]
    let values: Float64Array
    switch (type) {
      case 'F32':
        values = Float64Array.from({length: count}, (_, i) => buf.readFloatLE(at + 4 * i))
        break
      case 'F16':
        values = Float64Array.from({length: count}, (_, i) => f16Value(buf.readUInt16LE(at + 2 * i)))
        break
      case 'BF16':
        values = Float64Array.from({length: count}, (_, i) => {
          const b = Buffer.alloc(4)
          b.writeUInt32LE(buf.readUInt16LE(at + 2 * i) << 16 >>> 0)
          return b.readFloatLE(0)
        })
        break
      case 'Q4_0':
        values = Float64Array.from(decodeQ4_0(buf.subarray(at, at + (count / 32) * 18), count))
        break
      case 'Q8_0':
        values = Float64Array.from(decodeQ8_0(buf.subarray(at, at + (count / 32) * 34), count))
        break
      default:
        throw new Error(`gguf-reference: tensor ${t.name} has GGML type ${t.type}`)
    }
    tensors.set(t.name, {shape: [...ne].reverse(), type: type!, values})
  }
  return {parsed, tensors}
}
