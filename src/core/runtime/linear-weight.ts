/**
 * A linear weight as the decoder graph consumes it: float32 values, or
 * blocks of 4- or 8-bit codes in the layout of onnxruntime's `MatMulNBits`
 * (domain `com.microsoft`): codes uint8 `[out, in / block, block · bits / 8]`
 * (4-bit: element 2j in the low nibble of byte j, 2j + 1 in the high one),
 * one float32 scale per block `[out · in / block]`, and the default zero
 * point (8 for 4 bits, 128 for 8 bits): value = (code − zero) · scale.
 *
 * GGML's Q4_0 and Q8_0 map onto it exactly: Q4_0 stores `d` (f16) and
 * nibbles with element j and j + 16 in one byte (re-packed here), code − 8;
 * Q8_0 stores `d` (f16) and signed bytes (code = byte + 128).
 */
import {f16BitsToNumber} from '../dtype.js'
import {InputError} from '../errors.js'
import {Q4_0_BLOCK_SIZE, Q4_0_BYTES_PER_BLOCK} from '../quant/q4-0.js'
import {Q8_0_BLOCK_SIZE, Q8_0_BYTES_PER_BLOCK} from '../quant/q8-0.js'

/** A float32 weight, row-major `[out, in]` (an `nn.Linear` weight as stored). */
export interface FloatLinear {
  readonly kind: 'float'
  readonly out: number
  readonly in: number
  readonly values: Float32Array
}

/** A block-quantized weight in `MatMulNBits` layout (see the module comment). */
export interface NBitsLinear {
  readonly kind: 'nbits'
  readonly out: number
  readonly in: number
  readonly bits: 4 | 8
  readonly blockSize: number
  /** uint8 `[out, in / blockSize, blockSize · bits / 8]`. */
  readonly codes: Uint8Array
  /** float32 `[out · in / blockSize]`. */
  readonly scales: Float32Array
}

/** A linear weight as the graph runs it: float (`MatMul`) or blocks (`MatMulNBits`). */
export type LinearWeight = FloatLinear | NBitsLinear

/** Zero point `MatMulNBits` assumes when none is given. */
export function defaultZeroPoint(bits: 4 | 8): number {
  return bits === 4 ? 8 : 128
}

function f16(lo: number, hi: number): number {
  return f16BitsToNumber(lo | (hi << 8))
}

function checkBlocks(bytes: Uint8Array, out: number, inDim: number, block: number, bytesPerBlock: number, scheme: string): number {
  if (inDim % block !== 0) throw new InputError('RUNTIME_BAD_BLOCKS', `${scheme} weight [${out}, ${inDim}]: row size ${inDim} is not a multiple of the block size (${block})`)
  const blocks = (out * inDim) / block
  if (bytes.byteLength !== blocks * bytesPerBlock) {
    throw new InputError('RUNTIME_BAD_BLOCKS', `${scheme} weight [${out}, ${inDim}] needs ${blocks * bytesPerBlock} bytes (got ${bytes.byteLength})`)
  }
  return blocks
}

/** A GGML block type whose blocks are `d` (f16) then the codes, and how its codes become `MatMulNBits` codes. */
interface GgmlBlocks {
  readonly scheme: string
  readonly bits: 4 | 8
  /** Elements per block. */
  readonly blockSize: number
  readonly bytesPerBlock: number
  /** One block's codes: GGML's from `src[from]` into `MatMulNBits`' at `codes[to]` (`blockSize · bits / 8` bytes). */
  repack(src: Uint8Array, from: number, codes: Uint8Array, to: number): void
}

/** GGML blocks of a weight `[out, in]` (rows along `in`) as an `NBitsLinear`, losslessly. */
function ggmlToNBits(blocksBytes: Uint8Array, out: number, inDim: number, type: GgmlBlocks): NBitsLinear {
  const blocks = checkBlocks(blocksBytes, out, inDim, type.blockSize, type.bytesPerBlock, type.scheme)
  const codeBytes = (type.blockSize * type.bits) / 8
  const codes = new Uint8Array(blocks * codeBytes)
  const scales = new Float32Array(blocks)
  for (let b = 0; b < blocks; b++) {
    const o = b * type.bytesPerBlock
    scales[b] = f16(blocksBytes[o]!, blocksBytes[o + 1]!)
    type.repack(blocksBytes, o + 2, codes, b * codeBytes)
  }
  return {kind: 'nbits', out, in: inDim, bits: type.bits, blockSize: type.blockSize, codes, scales}
}

const Q4_0_BLOCKS: GgmlBlocks = {
  scheme: 'q4_0',
  bits: 4,
  blockSize: Q4_0_BLOCK_SIZE,
  bytesPerBlock: Q4_0_BYTES_PER_BLOCK,
  repack(src, from, codes, to) {
    // element e of the block: GGML holds it in byte e % 16, low nibble for e < 16;
    // MatMulNBits wants element e in byte e >> 1, low nibble for even e
    const q = new Uint8Array(32)
    for (let j = 0; j < 16; j++) {
      const byte = src[from + j]!
      q[j] = byte & 0x0f
      q[j + 16] = byte >> 4
    }
    for (let j = 0; j < 16; j++) codes[to + j] = q[2 * j]! | (q[2 * j + 1]! << 4)
  },
}

const Q8_0_BLOCKS: GgmlBlocks = {
  scheme: 'q8_0',
  bits: 8,
  blockSize: Q8_0_BLOCK_SIZE,
  bytesPerBlock: Q8_0_BYTES_PER_BLOCK,
  repack(src, from, codes, to) {
    for (let j = 0; j < 32; j++) codes[to + j] = src[from + j]! ^ 0x80 // int8 → uint8 with zero point 128
  },
}

/**
 * GGML Q4_0 blocks of a weight `[out, in]` (rows along `in`, 18 bytes per
 * 32 elements) as an `NBitsLinear`, losslessly.
 * @throws InputError when the byte count does not match the shape
 */
export function q4_0ToNBits(blocksBytes: Uint8Array, out: number, inDim: number): NBitsLinear {
  return ggmlToNBits(blocksBytes, out, inDim, Q4_0_BLOCKS)
}

/**
 * GGML Q8_0 blocks of a weight `[out, in]` (34 bytes per 32 elements) as an
 * 8-bit `NBitsLinear`, losslessly.
 * @throws InputError when the byte count does not match the shape
 */
export function q8_0ToNBits(blocksBytes: Uint8Array, out: number, inDim: number): NBitsLinear {
  return ggmlToNBits(blocksBytes, out, inDim, Q8_0_BLOCKS)
}

/** The float32 values `[out, in]` of any linear weight (quantized ones decoded as MatMulNBits does). */
export function linearValues(w: LinearWeight): Float32Array {
  if (w.kind === 'float') return w.values
  const out = new Float32Array(w.out * w.in)
  const zero = defaultZeroPoint(w.bits)
  const blocks = w.scales.length
  const bytesPerBlock = (w.blockSize * w.bits) / 8
  for (let b = 0; b < blocks; b++) {
    const s = w.scales[b]!
    const at = b * w.blockSize
    const o = b * bytesPerBlock
    if (w.bits === 8) for (let j = 0; j < w.blockSize; j++) out[at + j] = Math.fround((w.codes[o + j]! - zero) * s)
    else
      for (let j = 0; j < bytesPerBlock; j++) {
        const byte = w.codes[o + j]!
        out[at + 2 * j] = Math.fround(((byte & 0x0f) - zero) * s)
        out[at + 2 * j + 1] = Math.fround(((byte >> 4) - zero) * s)
      }
  }
  return out
}

/** A float weight `[out, in]`. */
export function floatLinear(values: Float32Array, out: number, inDim: number): FloatLinear {
  if (values.length !== out * inDim) throw new RangeError(`linear weight [${out}, ${inDim}] needs ${out * inDim} values (got ${values.length})`)
  return {kind: 'float', out, in: inDim, values}
}

/**
 * Rows of a weight reordered: row `r` of the result is row `from(r)` of `w`
 * (the GGUF q/k un-permutation works on whole rows, quantized or not).
 */
export function reorderRows(w: LinearWeight, from: (row: number) => number): LinearWeight {
  if (w.kind === 'float') {
    const values = new Float32Array(w.values.length)
    for (let r = 0; r < w.out; r++) values.set(w.values.subarray(from(r) * w.in, (from(r) + 1) * w.in), r * w.in)
    return {...w, values}
  }
  const blocksPerRow = w.in / w.blockSize
  const rowBytes = (w.in * w.bits) / 8
  const codes = new Uint8Array(w.codes.length)
  const scales = new Float32Array(w.scales.length)
  for (let r = 0; r < w.out; r++) {
    const f = from(r)
    codes.set(w.codes.subarray(f * rowBytes, (f + 1) * rowBytes), r * rowBytes)
    scales.set(w.scales.subarray(f * blocksPerRow, (f + 1) * blocksPerRow), r * blocksPerRow)
  }
  return {...w, codes, scales}
}
