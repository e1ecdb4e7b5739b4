/**
 * The tokenizer of a Hugging Face model folder as GGUF metadata
 * (`tokenizer.ggml.*`), chosen from a table of converters: the first whose
 * files are present and whose kind matches converts it. A folder none of
 * them fits is refused with one line naming the way out.
 *
 * | converter | reads | GGUF model |
 * |---|---|---|
 * | SentencePiece model | tokenizer.model (BPE type, 256 byte pieces) | llama |
 * | SentencePiece-style tokenizer.json | BPE with byte fallback, "▁" spaces | llama |
 * | byte-level BPE tokenizer.json | GPT-2 / Qwen2 / Llama 3 pre-tokenizers | gpt2 |
 */
import type {GgufKV} from '../formats/gguf-types.js'
import {InputError} from '../errors.js'
import {spmFromSentencePiece} from './sentencepiece-model.js'
import {bpeFromTokenizerJson, isByteLevelBpe} from './tokenizer-bpe.js'
import {TokenizerFiles, readTokenizerFiles} from './tokenizer-files.js'
import {SpecialTokens, findSpecialTokens, tokenizerKV} from './tokenizer-specials.js'
import {isSpmStyle, spmFromTokenizerJson} from './tokenizer-spm-json.js'
import {GgufVocabulary, TOKENIZER_WAY_OUT, unfaithful} from './vocabulary.js'

interface TokenizerConverter {
  readonly name: string
  applies(files: TokenizerFiles): boolean
  convert(files: TokenizerFiles, vocabSize: number): GgufVocabulary
  /** Whether the tokenizer class adds BOS when no file says (Llama's SentencePiece tokenizer does). */
  readonly defaultAddBos: boolean
}

/** The converters, tried in order. */
export const TOKENIZER_CONVERTERS: readonly TokenizerConverter[] = Object.freeze([
  {
    name: 'SentencePiece model',
    applies: (f: TokenizerFiles) => f.sentencePieceModel !== undefined && (f.tokenizerJson === undefined || isSpmStyle(f.tokenizerJson)),
    convert: spmFromSentencePiece,
    defaultAddBos: true,
  },
  {name: 'SentencePiece-style tokenizer.json', applies: (f: TokenizerFiles) => f.tokenizerJson !== undefined && isSpmStyle(f.tokenizerJson), convert: spmFromTokenizerJson, defaultAddBos: true},
  {name: 'byte-level BPE tokenizer.json', applies: (f: TokenizerFiles) => f.tokenizerJson !== undefined && isByteLevelBpe(f.tokenizerJson), convert: bpeFromTokenizerJson, defaultAddBos: false},
])

export interface GgufTokenizer {
  /** Which converter read it. */
  readonly converter: string
  readonly vocabulary: GgufVocabulary
  readonly specials: SpecialTokens
  readonly kv: GgufKV[]
}

/**
 * Read and convert the tokenizer of `folder`.
 * @param vocabSize the model's vocabulary size (config.json `vocab_size`, rows of the embedding)
 * @throws InputError TOKENIZER_MISSING when the folder has no tokenizer files; TOKENIZER_UNSUPPORTED when
 *   llama.cpp would tokenize differently (both name the way out: a llama.cpp GGUF of the base)
 */
export async function convertTokenizer(folder: string, vocabSize: number): Promise<GgufTokenizer> {
  const files = await readTokenizerFiles(folder)
  if (!files.tokenizerJson && !files.sentencePieceModel) {
    throw new InputError('TOKENIZER_MISSING', `convert ${folder}: no tokenizer.json or tokenizer.model, and llama.cpp needs the tokenizer inside the GGUF; add the base's tokenizer files, or ${TOKENIZER_WAY_OUT}`)
  }
  const converter = TOKENIZER_CONVERTERS.find((c) => c.applies(files))
  if (!converter) {
    const m = files.tokenizerJson?.model
    throw unfaithful(`${folder}/tokenizer.json`, `a ${m?.type ?? 'unknown'} tokenizer${m?.type === 'BPE' ? ' that is neither SentencePiece-style nor byte-level' : ''} has no llama.cpp equivalent that lora writes`)
  }
  const vocabulary = converter.convert(files, vocabSize)
  const specials = findSpecialTokens(files, vocabulary, converter.defaultAddBos)
  return {converter: converter.name, vocabulary, specials, kv: tokenizerKV(vocabulary, specials)}
}
