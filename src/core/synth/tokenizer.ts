/**
 * Small deterministic tokenizers for synthetic bases, so a synthetic base
 * converts to a GGUF llama.cpp loads (llama.cpp needs the tokenizer inside
 * the file). Two kinds, each exactly one of the kinds `lora` converts:
 *
 * - `spm`: SentencePiece-style (Llama 2): `<unk> <s> </s>`, the 256 byte tokens,
 *   then "▁" + lowercase words built one letter at a time (merge
 *   "▁ab" + "c" → "▁abc"), then single characters; BOS added.
 * - `byte-level`: GPT-2 / Qwen2 style: the 256 byte-level characters, then
 *   "Ġ" + lowercase words built the same way, then special tokens at the end.
 *
 * The vocabulary is exactly `vocabSize` tokens (the model's embedding rows).
 */
import {byteLevelAlphabet} from '../gguf/byte-level.js'

export type SynthTokenizerKind = 'spm' | 'byte-level'

/** The files of a tokenizer: file name → JSON object. */
export type TokenizerFileSet = Record<string, Record<string, unknown>>

const LETTERS = 'abcdefghijklmnopqrstuvwxyz'
const SPM_CHARS = `▁${LETTERS}${LETTERS.toUpperCase()}0123456789.,!?'"-:;()`
const QWEN2_SPLIT = "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+"

/** Words over a..z in order of length, then alphabet: a, b, …, z, aa, ab, … */
function* words(): Generator<string> {
  let level = ['']
  for (;;) {
    const next: string[] = []
    for (const w of level) for (const c of LETTERS) next.push(w + c)
    yield* next
    level = next
  }
}

/** The smallest vocabulary a kind fits in. */
export function minimumVocab(kind: SynthTokenizerKind): number {
  return kind === 'spm' ? 3 + 256 + SPM_CHARS.length : 256 + 3
}

function added(id: number, content: string, special = true): Record<string, unknown> {
  return {id, content, single_word: false, lstrip: false, rstrip: false, normalized: false, special}
}

function spm(vocabSize: number): TokenizerFileSet {
  const vocab: Record<string, number> = {'<unk>': 0, '<s>': 1, '</s>': 2}
  for (let b = 0; b < 256; b++) vocab[`<0x${b.toString(16).toUpperCase().padStart(2, '0')}>`] = 3 + b
  const merges: string[] = []
  const mergeCount = vocabSize - 259 - SPM_CHARS.length
  let id = 259
  for (const w of words()) {
    if (merges.length >= mergeCount) break
    const prefix = w.length === 1 ? '▁' : `▁${w.slice(0, -1)}`
    merges.push(`${prefix} ${w.slice(-1)}`)
    vocab[`▁${w}`] = id++
  }
  for (const c of SPM_CHARS) vocab[c] = id++
  return {
    'tokenizer.json': {
      version: '1.0',
      truncation: null,
      padding: null,
      added_tokens: [added(0, '<unk>'), added(1, '<s>'), added(2, '</s>')],
      normalizer: {type: 'Sequence', normalizers: [{type: 'Prepend', prepend: '▁'}, {type: 'Replace', pattern: {String: ' '}, content: '▁'}]},
      pre_tokenizer: null,
      post_processor: {
        type: 'TemplateProcessing',
        single: [{SpecialToken: {id: '<s>', type_id: 0}}, {Sequence: {id: 'A', type_id: 0}}],
        pair: [{SpecialToken: {id: '<s>', type_id: 0}}, {Sequence: {id: 'A', type_id: 0}}, {SpecialToken: {id: '<s>', type_id: 1}}, {Sequence: {id: 'B', type_id: 1}}],
        special_tokens: {'<s>': {id: '<s>', ids: [1], tokens: ['<s>']}},
      },
      decoder: {
        type: 'Sequence',
        decoders: [{type: 'Replace', pattern: {String: '▁'}, content: ' '}, {type: 'ByteFallback'}, {type: 'Fuse'}, {type: 'Strip', content: ' ', start: 1, stop: 0}],
      },
      model: {type: 'BPE', dropout: null, unk_token: '<unk>', continuing_subword_prefix: null, end_of_word_suffix: null, fuse_unk: true, byte_fallback: true, ignore_merges: false, vocab, merges},
    },
    'tokenizer_config.json': {
      add_bos_token: true,
      add_eos_token: false,
      bos_token: '<s>',
      eos_token: '</s>',
      unk_token: '<unk>',
      pad_token: null,
      clean_up_tokenization_spaces: false,
      legacy: true,
      model_max_length: 4096,
      tokenizer_class: 'LlamaTokenizerFast',
    },
  }
}

function byteLevel(vocabSize: number, pre: 'qwen2' | 'gpt-2'): TokenizerFileSet {
  const alphabet = byteLevelAlphabet()
  const vocab: Record<string, number> = {}
  alphabet.forEach((c, b) => (vocab[c] = b))
  const specials = pre === 'qwen2' ? ['<|endoftext|>', '<|im_start|>', '<|im_end|>'] : ['<|endoftext|>']
  const merges: string[] = []
  let id = 256
  for (const w of words()) {
    if (id >= vocabSize - specials.length) break
    const prefix = w.length === 1 ? 'Ġ' : `Ġ${w.slice(0, -1)}`
    merges.push(`${prefix} ${w.slice(-1)}`)
    vocab[`Ġ${w}`] = id++
  }
  const addedTokens = specials.map((s) => added(id++, s))
  if (pre === 'gpt-2') for (const t of addedTokens) vocab[t.content as string] = t.id as number
  const byteLevelPre = {type: 'ByteLevel', add_prefix_space: false, trim_offsets: pre === 'gpt-2', use_regex: pre === 'gpt-2'}
  const eos = specials[0]!
  return {
    'tokenizer.json': {
      version: '1.0',
      truncation: null,
      padding: null,
      added_tokens: addedTokens,
      normalizer: pre === 'qwen2' ? {type: 'NFC'} : null,
      pre_tokenizer:
        pre === 'qwen2'
          ? {type: 'Sequence', pretokenizers: [{type: 'Split', pattern: {Regex: QWEN2_SPLIT}, behavior: 'Isolated', invert: false}, byteLevelPre]}
          : byteLevelPre,
      post_processor: {type: 'ByteLevel', add_prefix_space: false, trim_offsets: pre === 'gpt-2', use_regex: false},
      decoder: {type: 'ByteLevel', add_prefix_space: false, trim_offsets: pre === 'gpt-2', use_regex: false},
      model: {type: 'BPE', dropout: null, unk_token: null, continuing_subword_prefix: '', end_of_word_suffix: '', fuse_unk: false, byte_fallback: false, ignore_merges: false, vocab, merges},
    },
    'tokenizer_config.json':
      pre === 'qwen2'
        ? {
            add_bos_token: false,
            bos_token: null,
            eos_token: '<|im_end|>',
            pad_token: eos,
            unk_token: null,
            model_max_length: 32768,
            tokenizer_class: 'Qwen2TokenizerFast',
            chat_template: "{% for message in messages %}{{'<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>' + '\\n'}}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}",
          }
        : {add_bos_token: false, bos_token: eos, eos_token: eos, unk_token: eos, model_max_length: 1024, tokenizer_class: 'GPT2TokenizerFast'},
  }
}

/**
 * The tokenizer files for a synthetic base, or undefined when `vocabSize` is
 * below what the kind needs (see `minimumVocab`).
 * @param style for byte-level: which pre-tokenizer (Qwen2's or GPT-2's)
 */
export function synthTokenizer(kind: SynthTokenizerKind, vocabSize: number, style: 'qwen2' | 'gpt-2' = 'qwen2'): TokenizerFileSet | undefined {
  if (vocabSize < minimumVocab(kind)) return undefined
  return kind === 'spm' ? spm(vocabSize) : byteLevel(vocabSize, style)
}
