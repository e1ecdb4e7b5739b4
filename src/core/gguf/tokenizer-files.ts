/**
 * The tokenizer files of a Hugging Face model folder, read once:
 * `tokenizer.json` (the fast tokenizer: model, normalizer, pre-tokenizer,
 * post-processor, added tokens), `tokenizer.model` (a SentencePiece model,
 * Llama 2 family), `tokenizer_config.json`, `special_tokens_map.json`,
 * `added_tokens.json`, `chat_template.jinja` / `chat_template.json`, and the
 * token ids in `config.json`.
 */
import {readFile, stat} from 'node:fs/promises'
import {join} from 'node:path'
import {InputError, withFileContext} from '../errors.js'

/** A tokenizer file larger than this is refused (the largest real ones, 256k-token vocabularies, are about 35 MB). */
export const MAX_TOKENIZER_FILE_BYTES = 256 * 1024 * 1024

/** One entry of tokenizer.json's `added_tokens`. */
export interface AddedToken {
  readonly id: number
  readonly content: string
  readonly special: boolean
  readonly normalized: boolean
}

/** The parts of tokenizer.json the GGUF conversion reads (the rest is kept as parsed). */
export interface TokenizerJson {
  readonly model: {
    readonly type: string
    readonly vocab?: Record<string, number>
    readonly merges?: ReadonlyArray<string | readonly [string, string]>
    readonly byte_fallback?: boolean
    readonly unk_token?: string | null
    readonly continuing_subword_prefix?: string | null
    readonly end_of_word_suffix?: string | null
    readonly dropout?: number | null
    readonly ignore_merges?: boolean
  }
  readonly normalizer?: JsonNode | null
  readonly pre_tokenizer?: JsonNode | null
  readonly post_processor?: JsonNode | null
  readonly decoder?: JsonNode | null
  readonly added_tokens?: readonly AddedToken[]
}

/** A component of tokenizer.json (normalizer, pre-tokenizer, …): an object with a `type`. */
export type JsonNode = {readonly type?: string} & Readonly<Record<string, unknown>>

export interface TokenizerFiles {
  /** The folder they were read from. */
  readonly folder: string
  readonly tokenizerJson?: TokenizerJson
  /** Raw bytes of tokenizer.model (a SentencePiece ModelProto). */
  readonly sentencePieceModel?: Uint8Array
  readonly tokenizerConfig?: Readonly<Record<string, unknown>>
  readonly specialTokensMap?: Readonly<Record<string, unknown>>
  /** added_tokens.json: content → id. */
  readonly addedTokensJson?: Readonly<Record<string, number>>
  /** chat_template.jinja, or chat_template.json's `chat_template`. */
  readonly chatTemplateFile?: string
  /** config.json (for bos/eos/pad ids when the tokenizer files do not name them). */
  readonly config?: Readonly<Record<string, unknown>>
}

async function readIfPresent(path: string): Promise<Buffer | undefined> {
  const info = await stat(path).catch(() => undefined)
  if (!info?.isFile()) return undefined
  if (info.size > MAX_TOKENIZER_FILE_BYTES) throw new InputError('TOKENIZER_TOO_LARGE', `read ${path}: ${info.size} bytes is larger than the ${MAX_TOKENIZER_FILE_BYTES}-byte limit for tokenizer files`)
  return withFileContext('read', path, () => readFile(path))
}

function parseObject(path: string, bytes: Buffer): Record<string, unknown> {
  const text = bytes.toString('utf8')
  if (text.startsWith('version https://git-lfs')) throw new InputError('GIT_LFS_POINTER', `read ${path}: this is a Git LFS pointer, not the file (run \`git lfs pull\` where it came from)`)
  let value: unknown
  try {
    value = JSON.parse(text)
  } catch (error) {
    throw new InputError('TOKENIZER_INVALID', `read ${path}: not valid JSON (${(error as Error).message})`)
  }
  if (typeof value !== 'object' || value === null || Array.isArray(value)) throw new InputError('TOKENIZER_INVALID', `read ${path}: not a JSON object`)
  return value as Record<string, unknown>
}

function checkTokenizerJson(path: string, raw: Record<string, unknown>): TokenizerJson {
  const model = raw.model as Record<string, unknown> | undefined
  if (typeof model !== 'object' || model === null || typeof model.type !== 'string') throw new InputError('TOKENIZER_INVALID', `read ${path}: no "model" object with a "type"`)
  if (model.vocab !== undefined && (typeof model.vocab !== 'object' || model.vocab === null || Array.isArray(model.vocab))) {
    throw new InputError('TOKENIZER_INVALID', `read ${path}: model.vocab is not an object of token → id`)
  }
  const added = raw.added_tokens ?? []
  if (!Array.isArray(added)) throw new InputError('TOKENIZER_INVALID', `read ${path}: added_tokens is not a list`)
  for (const [i, t] of added.entries()) {
    const ok = typeof t === 'object' && t !== null && Number.isSafeInteger((t as AddedToken).id) && (t as AddedToken).id >= 0 && typeof (t as AddedToken).content === 'string'
    if (!ok) throw new InputError('TOKENIZER_INVALID', `read ${path}: added_tokens[${i}] needs an integer "id" and a string "content"`)
  }
  return raw as unknown as TokenizerJson
}

/**
 * Read whichever tokenizer files `folder` holds (none is required here; the
 * converters say what they need).
 * @throws InputError for a file that is there but unreadable, too large or not JSON
 */
export async function readTokenizerFiles(folder: string): Promise<TokenizerFiles> {
  const file = (name: string) => join(folder, name)
  const json = async (name: string) => {
    const bytes = await readIfPresent(file(name))
    return bytes ? parseObject(file(name), bytes) : undefined
  }
  const tokenizerJsonRaw = await json('tokenizer.json')
  const sentencePiece = await readIfPresent(file('tokenizer.model'))
  const jinja = await readIfPresent(file('chat_template.jinja'))
  const chatJson = await json('chat_template.json')
  const addedJson = await json('added_tokens.json')
  if (addedJson) {
    for (const [k, v] of Object.entries(addedJson)) {
      if (!Number.isSafeInteger(v) || (v as number) < 0) throw new InputError('TOKENIZER_INVALID', `read ${file('added_tokens.json')}: token ${JSON.stringify(k)} has id ${JSON.stringify(v)} (expected a non-negative integer)`)
    }
  }
  return {
    folder,
    tokenizerJson: tokenizerJsonRaw ? checkTokenizerJson(file('tokenizer.json'), tokenizerJsonRaw) : undefined,
    sentencePieceModel: sentencePiece ? new Uint8Array(sentencePiece.buffer, sentencePiece.byteOffset, sentencePiece.byteLength) : undefined,
    tokenizerConfig: await json('tokenizer_config.json'),
    specialTokensMap: await json('special_tokens_map.json'),
    addedTokensJson: addedJson as Record<string, number> | undefined,
    chatTemplateFile: jinja ? jinja.toString('utf8') : typeof chatJson?.chat_template === 'string' ? chatJson.chat_template : undefined,
    config: await json('config.json'),
  }
}
