/**
 * A SentencePiece `tokenizer.model` (protobuf `ModelProto`, sentencepiece's
 * `sentencepiece_model.proto`), read for the fields llama.cpp's converter
 * takes from it, and turned into llama.cpp's `llama` vocabulary the way
 * `convert_hf_to_gguf.py` `_create_vocab_sentencepiece` does: pieces, scores
 * and types as stored, then tokens added by the Hugging Face files
 * (`added_tokens.json`, tokenizer.json's `added_tokens`), padded to the model's vocabulary.
 *
 *   ModelProto      1: repeated SentencePiece pieces · 2: TrainerSpec · 3: NormalizerSpec
 *   SentencePiece   1: string piece · 2: float score · 3: enum type (1 normal … 6 byte)
 *   TrainerSpec     3: enum model_type (1 unigram, 2 bpe, 3 word, 4 char; default unigram) · 35: bool byte_fallback
 *   NormalizerSpec  3: bool add_dummy_prefix (default true)
 */
import {join} from 'node:path'
import {InputError} from '../errors.js'
import type {TokenizerFiles} from './tokenizer-files.js'
import {GgufVocabulary, TokenType, padVocabulary, unfaithful} from './vocabulary.js'

/** A piece list longer than this is not a tokenizer (the largest real ones hold 256k). */
export const MAX_SENTENCEPIECE_PIECES = 1 << 22

export interface SentencePieceModel {
  readonly pieces: ReadonlyArray<{readonly piece: string; readonly score: number; readonly type: number}>
  /** 1 unigram, 2 bpe, 3 word, 4 char. */
  readonly modelType: number
  readonly byteFallback: boolean
  readonly addDummyPrefix: boolean
}

class Reader {
  pos = 0
  constructor(
    readonly bytes: Uint8Array,
    private readonly file: string,
  ) {}

  fail(problem: string): never {
    throw new InputError('SENTENCEPIECE_INVALID', `read ${this.file}: ${problem} at byte ${this.pos} (not a SentencePiece model)`)
  }

  varint(): number {
    let result = 0
    let shift = 0
    for (;;) {
      if (this.pos >= this.bytes.length) this.fail('truncated varint')
      const b = this.bytes[this.pos++]!
      if (shift < 49) result += (b & 0x7f) * 2 ** shift
      shift += 7
      if ((b & 0x80) === 0) return result
      if (shift > 70) this.fail('varint longer than 10 bytes')
    }
  }

  /** The next field: number, wire type, and for length-delimited fields the bytes. */
  field(): {no: number; wire: number; bytes?: Uint8Array; value?: number} {
    const key = this.varint()
    const no = Math.floor(key / 8)
    const wire = key % 8
    if (wire === 0) return {no, wire, value: this.varint()}
    if (wire === 2) {
      const n = this.varint()
      if (this.pos + n > this.bytes.length) this.fail(`field ${no} of ${n} bytes runs past the end`)
      const bytes = this.bytes.subarray(this.pos, this.pos + n)
      this.pos += n
      return {no, wire, bytes}
    }
    if (wire === 5) {
      if (this.pos + 4 > this.bytes.length) this.fail('truncated 32-bit field')
      const value = new DataView(this.bytes.buffer, this.bytes.byteOffset + this.pos, 4).getFloat32(0, true)
      this.pos += 4
      return {no, wire, value}
    }
    if (wire === 1) {
      if (this.pos + 8 > this.bytes.length) this.fail('truncated 64-bit field')
      this.pos += 8
      return {no, wire}
    }
    return this.fail(`wire type ${wire} of field ${no} is not valid`)
  }

  *fields(): Generator<{no: number; wire: number; bytes?: Uint8Array; value?: number}> {
    while (this.pos < this.bytes.length) yield this.field()
  }
}

/**
 * Parse a SentencePiece ModelProto.
 * @throws InputError SENTENCEPIECE_INVALID for bytes that are not one
 */
export function parseSentencePieceModel(bytes: Uint8Array, file: string): SentencePieceModel {
  const top = new Reader(bytes, file)
  const decoder = new TextDecoder('utf-8', {fatal: true})
  const pieces: Array<{piece: string; score: number; type: number}> = []
  let modelType = 1
  let byteFallback = false
  let addDummyPrefix = true
  for (const f of top.fields()) {
    if (f.no === 1 && f.bytes) {
      if (pieces.length >= MAX_SENTENCEPIECE_PIECES) top.fail(`more than ${MAX_SENTENCEPIECE_PIECES} pieces`)
      const p: {piece: string; score: number; type: number} = {piece: '', score: 0, type: TokenType.NORMAL}
      for (const g of new Reader(f.bytes, file).fields()) {
        if (g.no === 1 && g.bytes) {
          try {
            p.piece = decoder.decode(g.bytes)
          } catch {
            top.fail(`piece ${pieces.length} is not valid UTF-8`)
          }
        } else if (g.no === 2 && g.wire === 5) p.score = g.value!
        else if (g.no === 3 && g.wire === 0) p.type = g.value!
      }
      if (p.type < 1 || p.type > 6) top.fail(`piece ${pieces.length} has type ${p.type}`)
      pieces.push(p)
    } else if (f.no === 2 && f.bytes) {
      for (const g of new Reader(f.bytes, file).fields()) {
        if (g.no === 3 && g.wire === 0) modelType = g.value!
        else if (g.no === 35 && g.wire === 0) byteFallback = g.value !== 0
      }
    } else if (f.no === 3 && f.bytes) {
      for (const g of new Reader(f.bytes, file).fields()) if (g.no === 3 && g.wire === 0) addDummyPrefix = g.value !== 0
    }
  }
  if (pieces.length === 0) top.fail('no pieces')
  return {pieces, modelType, byteFallback, addDummyPrefix}
}

/**
 * The `llama` vocabulary of a folder with tokenizer.model.
 * @throws InputError for an unreadable model, or TOKENIZER_UNSUPPORTED for a unigram model or one without byte pieces
 */
export function spmFromSentencePiece(files: TokenizerFiles, vocabSize: number): GgufVocabulary {
  const file = join(files.folder, 'tokenizer.model')
  const model = parseSentencePieceModel(files.sentencePieceModel!, file)
  if (model.modelType !== 2) throw unfaithful(file, `the SentencePiece model is ${['', 'unigram', 'bpe', 'word', 'char'][model.modelType] ?? `type ${model.modelType}`}, which llama.cpp's "llama" tokenizer only approximates`)
  const bytePieces = model.pieces.filter((p) => p.type === TokenType.BYTE).length
  if (bytePieces !== 256) throw unfaithful(file, `the model has ${bytePieces} byte pieces, not 256 (llama.cpp spells unknown characters with byte tokens only)`)
  const tokens = model.pieces.map((p) => p.piece)
  const scores = model.pieces.map((p) => p.score)
  const types = model.pieces.map((p) => p.type)
  const addedFile = join(files.folder, files.addedTokensJson ? 'added_tokens.json' : 'tokenizer.json')
  const added: Array<{id: number; content: string; special: boolean}> = [
    ...Object.entries(files.addedTokensJson ?? {}).map(([content, id]) => ({id, content, special: false})),
    ...(files.tokenizerJson?.added_tokens ?? []).map((t) => ({id: t.id, content: t.content, special: t.special})),
  ].sort((x, y) => x.id - y.id)
  for (const a of added) {
    if (a.id < model.pieces.length) {
      if (tokens[a.id] !== a.content) throw unfaithful(addedFile, `added token ${a.id} ${JSON.stringify(a.content)} replaces piece ${JSON.stringify(tokens[a.id])}`)
      continue
    }
    while (tokens.length < a.id) {
      tokens.push(`[PAD${tokens.length}]`)
      scores.push(-10000)
      types.push(TokenType.UNUSED)
    }
    tokens[a.id] = a.content
    scores[a.id] = -1000
    types[a.id] = a.special ? TokenType.CONTROL : TokenType.USER_DEFINED
  }
  padVocabulary(tokens, types, scores, vocabSize, file)
  return {model: 'llama', pre: 'default', tokens, scores, types, addSpacePrefix: model.addDummyPrefix, source: file}
}
