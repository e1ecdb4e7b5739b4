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

