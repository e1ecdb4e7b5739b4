/**
 * The few pieces of the WebAssembly binary format (core spec 2.0, with the
 * fixed-width SIMD proposal folded in) that a kernel of this project needs:
 * one module with one memory and exported functions, written from opcodes
 * named here. Kernels are built from code at run time, so the repository holds
 * no opaque binary and no toolchain is needed.
 */

/** Value types. */
export const I32 = 0x7f
export const F32 = 0x7d
export const V128 = 0x7b

/** Unsigned LEB128. */
export function uleb(n: number): number[] {
  const out: number[] = []
  do {
    let byte = n & 0x7f
    n = Math.floor(n / 128)
    if (n !== 0) byte |= 0x80
    out.push(byte)
  } while (n !== 0)
  return out
}

/** Signed LEB128 (32-bit values). */
export function sleb(n: number): number[] {
  const out: number[] = []
  for (;;) {
    const byte = n & 0x7f
    n >>= 7
    if ((n === 0 && (byte & 0x40) === 0) || (n === -1 && (byte & 0x40) !== 0)) {
      out.push(byte)
      return out
    }
    out.push(byte | 0x80)
  }
}

const text = new TextEncoder()

/** Core instructions, by their text-format names. */
export const op = {
  block: [0x02, 0x40],
  loop: [0x03, 0x40],
  if: [0x04, 0x40],
  end: [0x0b],
  br: (depth: number) => [0x0c, ...uleb(depth)],
  brIf: (depth: number) => [0x0d, ...uleb(depth)],
  return: [0x0f],
  select: [0x1b],
  localGet: (i: number) => [0x20, ...uleb(i)],
  localSet: (i: number) => [0x21, ...uleb(i)],
  localTee: (i: number) => [0x22, ...uleb(i)],
  i32Load16U: (offset = 0) => [0x2f, 1, ...uleb(offset)],
  f32Load: (offset = 0) => [0x2a, 2, ...uleb(offset)],
  f32Store: (offset = 0) => [0x38, 2, ...uleb(offset)],
  i32Const: (v: number) => [0x41, ...sleb(v)],
  f32Const: (v: number) => [0x43, ...new Uint8Array(Float32Array.of(v).buffer)],
  i32Eqz: [0x45],
  i32GtU: [0x4b],
  i32GeU: [0x4f],
  f32Eq: [0x5b],
  i32Ctz: [0x68],
  i32Add: [0x6a],
  i32And: [0x71],
  i32Or: [0x72],
  i32Shl: [0x74],
  f32Neg: [0x8c],
  f32Mul: [0x94],
  f32Div: [0x95],
  f32ReinterpretI32: [0xbe],
} as const

const simd = (code: number, ...immediate: number[]) => [0xfd, ...uleb(code), ...immediate]

/** SIMD instructions, by their text-format names. */
export const v128 = {
  load: (offset = 0) => simd(0x00, 4, ...uleb(offset)),
  store: (offset = 0) => simd(0x0b, 0, ...uleb(offset)),
  shuffle: (lanes: readonly number[]) => simd(0x0d, ...lanes),
  i16x8Splat: simd(0x10),
  i32x4Splat: simd(0x11),
  f32x4Splat: simd(0x13),
  i16x8ExtractLaneU: (lane: number) => simd(0x19, lane),
  i32x4ExtractLane: (lane: number) => simd(0x1b, lane),
  i16x8Eq: simd(0x2d),
  i32x4Eq: simd(0x37),
  and: simd(0x4e),
  or: simd(0x50),
  i8x16NarrowI16x8U: simd(0x66),
  i8x16Shl: simd(0x6b),
  i16x8Bitmask: simd(0x84),
  i16x8NarrowI32x4U: simd(0x86),
  i16x8MaxU: simd(0x99),
  i32x4Bitmask: simd(0xa4),
  i32x4ExtendLowI16x8U: simd(0xa9),
  i32x4ExtendHighI16x8U: simd(0xaa),
  i32x4Shl: simd(0xab),
  i32x4MinS: simd(0xb6),
  i32x4MaxU: simd(0xb9),
  f32x4Add: simd(0xe4),
  f32x4Mul: simd(0xe6),
  i32x4TruncSatF32x4S: simd(0xf8),
} as const

/** One function: its signature, its locals after the parameters (by type, in order), and its body (without the final `end`). */
export interface WasmFunction {
  readonly name: string
  readonly params: readonly number[]
  readonly results: readonly number[]
  readonly locals: readonly number[]
  readonly body: readonly number[]
}

function section(id: number, content: number[]): number[] {
  return [id, ...uleb(content.length), ...content]
}

function vec(items: number[][]): number[] {
  return [...uleb(items.length), ...items.flat()]
}

function name(s: string): number[] {
  const b = [...text.encode(s)]
  return [...uleb(b.length), ...b]
}

/** A module with one memory of `pages` 64 KiB pages (exported as `memory`) and the functions, each exported by name. */
export function wasmModule(pages: number, functions: readonly WasmFunction[]): Uint8Array {
  const types = functions.map((f) => [0x60, ...vec(f.params.map((t) => [t])), ...vec(f.results.map((t) => [t]))])
  const code = functions.map((f) => {
    // locals as runs of one type
    const runs: number[][] = []
    for (const t of f.locals) {
      const last = runs[runs.length - 1]
      if (last && last[1] === t) last[0]!++
      else runs.push([1, t])
    }
    const body = [...vec(runs.map(([count, t]) => [...uleb(count!), t!])), ...f.body, ...op.end]
    return [...uleb(body.length), ...body]
  })
  return Uint8Array.from([
    ...[0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00],
    ...section(1, vec(types)),
    ...section(3, vec(functions.map((_, i) => uleb(i)))),
    ...section(5, vec([[0x00, ...uleb(pages)]])),
    ...section(7, vec([...functions.map((f, i) => [...name(f.name), 0x00, ...uleb(i)]), [...name('memory'), 0x02, 0x00]])),
    ...section(10, vec(code)),
  ])
}
