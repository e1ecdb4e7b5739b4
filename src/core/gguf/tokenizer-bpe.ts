/**
 * A byte-level BPE tokenizer.json (GPT-2, Qwen2, Llama 3) as llama.cpp's
 * `gpt2` vocabulary: tokens and merges as stored, and `tokenizer.ggml.pre`
 * naming the pre-tokenizer llama.cpp must apply. llama.cpp has a fixed set
 * of pre-tokenizers (each a hard-coded regular expression); the table below
 * recognizes the tokenizer.json pre-tokenizers that are exactly one of them.
 * Anything else is refused: llama.cpp would split the text differently.
 */
import {join} from 'node:path'
import {byteLevelAlphabet} from './byte-level.js'
import type {JsonNode, TokenizerFiles, TokenizerJson} from './tokenizer-files.js'
import {mergePairs} from './tokenizer-spm-json.js'
import {GgufVocabulary, TokenType, padVocabulary, tokensById, unfaithful} from './vocabulary.js'

const QWEN2_SPLIT = "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+"
const LLAMA3_SPLIT = "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}{1,3}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+"

/** A pre-tokenizer llama.cpp implements, as tokenizer.json spells it. */
interface KnownPreTokenizer {
  /** `tokenizer.ggml.pre`. */
  readonly pre: string
  /** The Split regex before a ByteLevel without regex, or undefined for a ByteLevel using GPT-2's own regex. */
  readonly split: string | undefined
  /** Whether llama.cpp ignores merges for whole-word tokens with this pre-tokenizer (tokenizer.json's `ignore_merges` must agree). */
  readonly ignoreMerges: boolean
  /** Normalizers accepted (llama.cpp applies none; NFC input is unchanged by NFC). */
  readonly normalizers: readonly (string | null)[]
}

/** The pre-tokenizers `lora` recognizes. */
export const BPE_PRE_TOKENIZERS: readonly KnownPreTokenizer[] = Object.freeze([
  {pre: 'gpt-2', split: undefined, ignoreMerges: false, normalizers: [null]},
  {pre: 'qwen2', split: QWEN2_SPLIT, ignoreMerges: false, normalizers: [null, 'NFC']},
  {pre: 'llama-bpe', split: LLAMA3_SPLIT, ignoreMerges: true, normalizers: [null]},
])

function isNode(v: unknown): v is JsonNode {
  return typeof v === 'object' && v !== null && !Array.isArray(v)
}

/** The ByteLevel step: must not add a prefix space (llama.cpp never does for these). */
function byteLevelOk(n: JsonNode, useRegex: boolean): boolean {
  return n.type === 'ByteLevel' && n.add_prefix_space !== true && (n.use_regex ?? true) === useRegex
}

/** Which known pre-tokenizer tokenizer.json's is, or undefined. */
export function recognizePreTokenizer(tj: TokenizerJson): KnownPreTokenizer | undefined {
  const pre = tj.pre_tokenizer
  if (!isNode(pre)) return undefined
  if (byteLevelOk(pre, true)) return BPE_PRE_TOKENIZERS.find((k) => k.split === undefined)
  if (pre.type !== 'Sequence' || !Array.isArray(pre.pretokenizers) || pre.pretokenizers.length !== 2) return undefined
  const [split, bytes] = pre.pretokenizers as unknown[]
  if (!isNode(split) || !isNode(bytes) || split.type !== 'Split' || !byteLevelOk(bytes, false)) return undefined
  if (split.behavior !== 'Isolated' || split.invert === true || !isNode(split.pattern)) return undefined
  const regex = (split.pattern as Record<string, unknown>).Regex
  return BPE_PRE_TOKENIZERS.find((k) => k.split !== undefined && k.split === regex)
}

/** Whether tokenizer.json is byte-level BPE. */
export function isByteLevelBpe(tj: TokenizerJson): boolean {
  const decoder = tj.decoder
  return tj.model.type === 'BPE' && !tj.model.byte_fallback && isNode(decoder) && decoder.type === 'ByteLevel'
}

/**
 * Convert a byte-level BPE tokenizer.json.
 * @param vocabSize the model's vocabulary (rows of the embedding); the tokenizer is padded to it
 * @throws InputError TOKENIZER_UNSUPPORTED (naming the reason and the way out) when llama.cpp would tokenize differently
 */
export function bpeFromTokenizerJson(files: TokenizerFiles, vocabSize: number): GgufVocabulary {
  const tj = files.tokenizerJson!
  const file = join(files.folder, 'tokenizer.json')
  const m = tj.model
  if (!isByteLevelBpe(tj)) throw unfaithful(file, `model ${m.type} with decoder ${JSON.stringify(tj.decoder?.type ?? null)} is not byte-level BPE`)
  if (m.continuing_subword_prefix || m.end_of_word_suffix) throw unfaithful(file, 'the BPE model uses a subword prefix or suffix')
  if (m.dropout) throw unfaithful(file, `the BPE model has dropout ${m.dropout}`)
  const known = recognizePreTokenizer(tj)
  if (!known) throw unfaithful(file, `its pre-tokenizer ${JSON.stringify(tj.pre_tokenizer ?? null).slice(0, 200)} is none of llama.cpp's (${BPE_PRE_TOKENIZERS.map((k) => k.pre).join(', ')})`)
  const normalizer = isNode(tj.normalizer) ? (tj.normalizer.type ?? 'unknown') : null
  if (!known.normalizers.includes(normalizer)) throw unfaithful(file, `normalizer ${normalizer} is not applied by llama.cpp's ${known.pre} tokenizer`)
  if ((m.ignore_merges ?? false) !== known.ignoreMerges) throw unfaithful(file, `ignore_merges is ${m.ignore_merges ?? false} but llama.cpp's ${known.pre} tokenizer uses ${known.ignoreMerges}`)
  const byId = tokensById(m.vocab ?? {}, file)
  const added = new Map<number, boolean>()
  for (const t of tj.added_tokens ?? []) {
    const existing = byId[t.id]
    if (existing !== undefined && existing !== t.content) throw unfaithful(file, `added token ${t.id} ${JSON.stringify(t.content)} replaces vocabulary token ${JSON.stringify(existing)}`)
    byId[t.id] = t.content
    added.set(t.id, t.special)
  }
  const types: number[] = []
  const tokens: string[] = []
  for (let id = 0; id < byId.length; id++) {
    const t = byId[id]
    if (t === undefined) {
      tokens.push(`[PAD${id}]`)
      types.push(TokenType.UNUSED)
      continue
    }
    tokens.push(t)
    const special = added.get(id)
    types.push(special === undefined ? TokenType.NORMAL : special ? TokenType.CONTROL : TokenType.USER_DEFINED)
  }
  const ids = new Set(tokens)
  const alphabet = byteLevelAlphabet()
  const missing = alphabet.findIndex((c) => !ids.has(c))
  if (missing >= 0) throw unfaithful(file, `byte 0x${missing.toString(16).padStart(2, '0')} (${JSON.stringify(alphabet[missing])}) has no token (llama.cpp spells every byte with its own token)`)
  const merges = mergePairs(tj, file).map(([l, r], rank) => {
    if (/[ \n]/.test(l) || /[ \n]/.test(r)) throw unfaithful(file, `merge ${rank} holds a space or newline, which llama.cpp's merge list cannot`)
    return `${l} ${r}`
  })
  padVocabulary(tokens, types, undefined, vocabSize, file)
  return {model: 'gpt2', pre: known.pre, tokens, types, merges, source: file}
}
