/**
 * A GGUF file's `tokenizer.ggml.*` metadata converted to a Hugging Face
 * `tokenizer.json` object, so the same maintained library tokenizes both
 * (as transformers' `GGUFLlamaConverter` / `GGUFGPTConverter` do):
 *
 * - `llama` (SentencePiece-style BPE with scores and byte fallback): a BPE
 *   model whose merges are every split of a normal token into two tokens,
 *   ranked by the merged token's score (highest first), ties by the parts'
 *   ids; the Llama normalizer (prepend ▁, spaces → ▁) and decoder.
 * - `gpt2` (byte-level BPE with merges): the merges as stored, a Split
 *   pre-tokenizer with the regular expression of `tokenizer.ggml.pre`
 *   (`default`/`gpt2`, `llama-bpe`, `qwen2`), ByteLevel encoding/decoding.
 *
 * Control tokens (type 3) become special added tokens; user-defined ones
 * (type 4) plain added tokens. BOS/EOS are added as
 * `tokenizer.ggml.add_bos_token` / `add_eos_token` say (llama's default: BOS).
 */
import {InputError} from '../errors.js'
import type {GgufFile} from '../formats/gguf-reader.js'
import {sanitizeName} from '../formats/safetensors-header.js'

/** llama.cpp's token types. */
export const GGUF_TOKEN_TYPE = Object.freeze({NORMAL: 1, UNKNOWN: 2, CONTROL: 3, USER_DEFINED: 4, UNUSED: 5, BYTE: 6})

/** Pre-tokenizer regular expressions by `tokenizer.ggml.pre` (from the models' own tokenizer.json files). */
export const GGUF_PRE_TOKENIZERS: Readonly<Record<string, string>> = Object.freeze({
  default: "'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|\\s+(?!\\S)|\\s+",
  gpt2: "'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|\\s+(?!\\S)|\\s+",
  'llama-bpe': "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}{1,3}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+",
  qwen2: "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+",
})

/** A tokenizer.json object and the tokenizer_config.json fields the library reads. */
export interface ConvertedTokenizer {
  readonly json: Record<string, unknown>
  readonly config: Record<string, unknown>
}

function strings(gguf: GgufFile, key: string, required: boolean): string[] | undefined {
  const v = gguf.value(key)
  if (v === undefined && !required) return undefined
  if (!v || typeof v !== 'object' || !v.items.every((x) => typeof x === 'string')) throw new InputError('GGUF_BAD_TOKENIZER', `read ${gguf.path}: ${key} is not an array of strings`)
  return v.items as string[]
}

function numbers(gguf: GgufFile, key: string, length: number): number[] | undefined {
  const v = gguf.value(key)
  if (v === undefined) return undefined
  if (!v || typeof v !== 'object' || v.items.length !== length || !v.items.every((x) => typeof x === 'number')) {
    throw new InputError('GGUF_BAD_TOKENIZER', `read ${gguf.path}: ${key} must be ${length} numbers (one per token)`)
  }
  return v.items as number[]
}

function tokenId(gguf: GgufFile, key: string, count: number): number | undefined {
  const v = gguf.value(`tokenizer.ggml.${key}`)
  return typeof v === 'number' && v >= 0 && v < count ? v : undefined
}

function flag(gguf: GgufFile, key: string, fallback: boolean): boolean {
  const v = gguf.value(`tokenizer.ggml.${key}`)
  return typeof v === 'boolean' ? v : fallback
}

/** TemplateProcessing that adds `bos` before (and `eos` after) a sequence. */
function template(bos: string | undefined, bosId: number | undefined, eos: string | undefined, eosId: number | undefined): Record<string, unknown> | null {
  if (bos === undefined && eos === undefined) return null
  const special = (id: string, type: number) => ({SpecialToken: {id, type_id: type}})
  const seq = (id: string, type: number) => ({Sequence: {id, type_id: type}})
  const single = [...(bos ? [special(bos, 0)] : []), seq('A', 0), ...(eos ? [special(eos, 0)] : [])]
  const pair = [...single, ...(bos ? [special(bos, 1)] : []), seq('B', 1), ...(eos ? [special(eos, 1)] : [])]
  const specials: Record<string, unknown> = {}
  if (bos) specials[bos] = {id: bos, ids: [bosId], tokens: [bos]}
  if (eos) specials[eos] = {id: eos, ids: [eosId], tokens: [eos]}
  return {type: 'TemplateProcessing', single, pair, special_tokens: specials}
}

/** SentencePiece-style merges: every split of a normal token into two tokens, by the token's score. */
export function mergesFromScores(tokens: readonly string[], scores: readonly number[], types: readonly number[]): string[] {
  const vocab = new Map<string, number>()
  tokens.forEach((t, i) => {
    if (!vocab.has(t)) vocab.set(t, i)
  })
  const merges: Array<[string, string, number]> = []
  tokens.forEach((piece, i) => {
    if (types[i] !== GGUF_TOKEN_TYPE.NORMAL) return
    const chars = [...piece]
    const local: Array<[string, string, number]> = []
    for (let k = 1; k < chars.length; k++) {
      const left = chars.slice(0, k).join('')
      const right = chars.slice(k).join('')
      if (vocab.has(left) && vocab.has(right)) local.push([left, right, scores[i]!])
    }
    local.sort((a, b) => vocab.get(a[0])! - vocab.get(b[0])! || vocab.get(a[1])! - vocab.get(b[1])!)
    merges.push(...local)
  })
  merges.sort((a, b) => b[2] - a[2]) // stable: ties keep token order
  return merges.map(([l, r]) => `${l} ${r}`)
}

/**
 * Convert `gguf`'s tokenizer metadata to a tokenizer.json object.
 * @throws InputError for a GGUF without a tokenizer, an unknown `tokenizer.ggml.model` or `pre`, or malformed arrays
 */
export function tokenizerJsonFromGguf(gguf: GgufFile): ConvertedTokenizer {
  const model = gguf.value('tokenizer.ggml.model')
  if (model === undefined) throw new InputError('GGUF_NO_TOKENIZER', `read ${gguf.path}: no tokenizer.ggml.model (this GGUF carries no tokenizer)`)
  const tokens = strings(gguf, 'tokenizer.ggml.tokens', true)!
  const n = tokens.length
  const types = numbers(gguf, 'tokenizer.ggml.token_type', n) ?? new Array<number>(n).fill(GGUF_TOKEN_TYPE.NORMAL)
  const vocab: Record<string, number> = Object.create(null) as Record<string, number>
  tokens.forEach((t, i) => {
    if (!(t in vocab)) vocab[t] = i
  })
  const added = tokens
    .map((content, id) => ({content, id, type: types[id]!}))
    .filter((t) => t.type === GGUF_TOKEN_TYPE.CONTROL || t.type === GGUF_TOKEN_TYPE.USER_DEFINED || t.type === GGUF_TOKEN_TYPE.UNKNOWN)
    .map((t) => ({id: t.id, content: t.content, single_word: false, lstrip: false, rstrip: false, normalized: t.type === GGUF_TOKEN_TYPE.USER_DEFINED, special: t.type !== GGUF_TOKEN_TYPE.USER_DEFINED}))
  const unkId = tokenId(gguf, 'unknown_token_id', n)
  const bosId = tokenId(gguf, 'bos_token_id', n)
  const eosId = tokenId(gguf, 'eos_token_id', n)
  const bos = bosId === undefined ? undefined : tokens[bosId]
  const eos = eosId === undefined ? undefined : tokens[eosId]
  const config = {bos_token: bos ?? null, eos_token: eos ?? null, unk_token: unkId === undefined ? null : tokens[unkId], clean_up_tokenization_spaces: false}
  // what both models' tokenizer.json share: the header, the added tokens, and BOS/EOS as the GGUF says (`addBos`: the model's default)
  const head = {version: '1.0', truncation: null, padding: null, added_tokens: added}
  const postProcessor = (addBos: boolean) => template(flag(gguf, 'add_bos_token', addBos) ? bos : undefined, bosId, flag(gguf, 'add_eos_token', false) ? eos : undefined, eosId)
  if (model === 'llama') {
    const scores = numbers(gguf, 'tokenizer.ggml.scores', n)
    if (!scores) throw new InputError('GGUF_BAD_TOKENIZER', `read ${gguf.path}: a llama tokenizer needs tokenizer.ggml.scores`)
    const json = {
      ...head,
      normalizer: {type: 'Sequence', normalizers: [{type: 'Prepend', prepend: '▁'}, {type: 'Replace', pattern: {String: ' '}, content: '▁'}]},
      pre_tokenizer: null,
      post_processor: postProcessor(true),
      decoder: {type: 'Sequence', decoders: [{type: 'Replace', pattern: {String: '▁'}, content: ' '}, {type: 'ByteFallback'}, {type: 'Fuse'}, {type: 'Strip', content: ' ', start: 1, stop: 0}]},
      model: {type: 'BPE', dropout: null, unk_token: unkId === undefined ? null : tokens[unkId], continuing_subword_prefix: null, end_of_word_suffix: null, fuse_unk: true, byte_fallback: true, ignore_merges: false, vocab, merges: mergesFromScores(tokens, scores, types)},
    }
    return {json, config}
  }
  if (model === 'gpt2') {
    const merges = strings(gguf, 'tokenizer.ggml.merges', true)!
    const preName = gguf.value('tokenizer.ggml.pre')
    const pre = typeof preName === 'string' ? preName : 'default'
    const regex = GGUF_PRE_TOKENIZERS[pre]
    if (regex === undefined) {
      throw new InputError('GGUF_UNSUPPORTED_TOKENIZER', `read ${gguf.path}: tokenizer.ggml.pre "${sanitizeName(pre)}" is not one the runtime knows (${Object.keys(GGUF_PRE_TOKENIZERS).join(', ')})`)
    }
    const json = {
      ...head,
      normalizer: pre === 'qwen2' ? {type: 'NFC'} : null,
      pre_tokenizer: {
        type: 'Sequence',
        pretokenizers: [
          {type: 'Split', pattern: {Regex: regex}, behavior: 'Isolated', invert: false},
          {type: 'ByteLevel', add_prefix_space: false, trim_offsets: true, use_regex: false},
        ],
      },
      post_processor: postProcessor(false) ?? {type: 'ByteLevel', add_prefix_space: true, trim_offsets: false, use_regex: true},
      decoder: {type: 'ByteLevel', add_prefix_space: true, trim_offsets: true, use_regex: true},
      model: {type: 'BPE', dropout: null, unk_token: null, continuing_subword_prefix: '', end_of_word_suffix: '', fuse_unk: false, byte_fallback: false, ignore_merges: pre === 'llama-bpe', vocab, merges},
    }
    return {json, config}
  }
  throw new InputError('GGUF_UNSUPPORTED_TOKENIZER', `read ${gguf.path}: tokenizer.ggml.model "${sanitizeName(String(model))}" is not supported (llama, gpt2)`)
}
