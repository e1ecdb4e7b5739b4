/**
 * A tokenizer as llama.cpp reads it from `tokenizer.ggml.*`: one vocabulary
 * shape shared by the converters (SentencePiece-style `llama`, byte-level BPE
 * `gpt2`), and the refusal every converter raises when a tokenizer cannot
 * be carried over faithfully.
 */
import {InputError} from '../errors.js'

/** llama.cpp's token types (`llama_token_type`, gguf-py `TokenType`). */
export const TokenType = Object.freeze({NORMAL: 1, UNKNOWN: 2, CONTROL: 3, USER_DEFINED: 4, UNUSED: 5, BYTE: 6} as const)

export interface GgufVocabulary {
  /** `tokenizer.ggml.model`: `llama` (SentencePiece-style merges by score) or `gpt2` (byte-level BPE). */
  readonly model: 'llama' | 'gpt2'
  /** `tokenizer.ggml.pre`: the pre-tokenizer llama.cpp applies (`default` for `llama`). */
  readonly pre: string
  /** Token texts by id, padded to the model's vocabulary with `[PAD<id>]` (type UNUSED), as llama.cpp's converter pads. */
  readonly tokens: readonly string[]
  /** `llama` only: merge priority of each token (higher merges first). */
  readonly scores?: readonly number[]
  readonly types: readonly number[]
  /** `gpt2` only: merges as "left right", highest priority first. */
  readonly merges?: readonly string[]
  /** `llama` only: whether a space is put before the text (SentencePiece's add_dummy_prefix). */
  readonly addSpacePrefix?: boolean
  /** Where it was read from, for messages. */
  readonly source: string
}

/** The way out named by every refusal: a GGUF of the base carries a tokenizer llama.cpp already reads. */
export const TOKENIZER_WAY_OUT = 'pass a llama.cpp GGUF of the base instead (--base model.gguf), whose tokenizer is copied as it is'

/**
 * A tokenizer that cannot be converted so that llama.cpp tokenizes text as
 * the Hugging Face tokenizer does.
 */
export function unfaithful(file: string, problem: string): InputError {
  return new InputError('TOKENIZER_UNSUPPORTED', `convert ${file}: ${problem}, so llama.cpp would tokenize text differently; ${TOKENIZER_WAY_OUT}`)
}

/** Pad token texts and types to `vocabSize` entries with `[PAD<id>]` UNUSED tokens (llama.cpp's converter does the same). */
export function padVocabulary(tokens: string[], types: number[], scores: number[] | undefined, vocabSize: number, file: string): void {
  if (tokens.length > vocabSize) {
    throw new InputError('TOKENIZER_VOCAB_MISMATCH', `convert ${file}: the tokenizer has ${tokens.length} tokens but the model's vocabulary (vocab_size) is ${vocabSize}`)
  }
  for (let id = tokens.length; id < vocabSize; id++) {
    tokens.push(`[PAD${id}]`)
    types.push(TokenType.UNUSED)
    scores?.push(-10000)
  }
}

/** Token texts by id from a token → id map; ids must be unique and dense from 0 (holes are left undefined). */
export function tokensById(vocab: Readonly<Record<string, number>>, file: string): Array<string | undefined> {
  const out: Array<string | undefined> = []
  for (const [token, id] of Object.entries(vocab)) {
    if (!Number.isSafeInteger(id) || id < 0 || id > 1 << 24) throw new InputError('TOKENIZER_INVALID', `read ${file}: token ${JSON.stringify(token)} has id ${JSON.stringify(id)}`)
    if (out[id] !== undefined) throw new InputError('TOKENIZER_INVALID', `read ${file}: tokens ${JSON.stringify(out[id])} and ${JSON.stringify(token)} share id ${id}`)
    out[id] = token
  }
  return out
}
