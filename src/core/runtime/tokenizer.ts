/**
 * Text ↔ token ids through `@huggingface/tokenizers` (a maintained port of
 * Hugging Face's tokenizers): from a model folder's `tokenizer.json` (and
 * `tokenizer_config.json`), or from a GGUF file's `tokenizer.ggml.*`
 * metadata converted to the same form (`gguf-tokenizer.ts`).
 */
import {stat} from 'node:fs/promises'
import {readRegularText} from '../io/regular-file.js'
import {join} from 'node:path'
import {InputError, withFileContext} from '../errors.js'
import {GgufFile} from '../formats/gguf-reader.js'
import {tokenizerJsonFromGguf} from './gguf-tokenizer.js'

type HfTokenizer = import('@huggingface/tokenizers').Tokenizer

/** A tokenizer.json larger than this is refused (the largest real ones are ~30 MB). */
export const MAX_TOKENIZER_JSON_BYTES = 256 * 1024 * 1024

/** A model's tokenizer: `encode` (BOS as the tokenizer adds it), `decode`, its BOS and EOS ids. */
export class TextTokenizer {
  private constructor(
    private readonly tokenizer: HfTokenizer,
    /** Where it was read from. */
    readonly source: string,
    /** Beginning-of-sequence id, when the tokenizer has one. */
    readonly bosId: number | undefined,
    /** End-of-sequence ids (generation stops at any). */
    readonly eosIds: readonly number[],
  ) {}

  /**
   * A tokenizer from a parsed tokenizer.json and tokenizer_config.json.
   * @throws InputError when the library cannot build it
   */
  static async fromJson(json: Record<string, unknown>, config: Record<string, unknown>, source: string): Promise<TextTokenizer> {
    const {Tokenizer} = await import('@huggingface/tokenizers')
    let tokenizer: HfTokenizer
    try {
      tokenizer = new Tokenizer(json, config)
    } catch (error) {
      throw new InputError('TOKENIZER_INVALID', `read ${source}: the tokenizer cannot be built (${(error as Error).message})`)
    }
    const idOf = (v: unknown): number | undefined => {
      const content = typeof v === 'string' ? v : v && typeof v === 'object' && typeof (v as {content?: unknown}).content === 'string' ? (v as {content: string}).content : undefined
      return content === undefined ? undefined : tokenizer.token_to_id(content)
    }
    const eos = idOf(config.eos_token)
    return new TextTokenizer(tokenizer, source, idOf(config.bos_token), eos === undefined ? [] : [eos])
  }

  /**
   * `tokenizer.json` (required) and `tokenizer_config.json` (optional) of a model folder.
   * @throws InputError when tokenizer.json is missing or not JSON
   */
  static async fromFolder(dir: string): Promise<TextTokenizer> {
    const path = join(dir, 'tokenizer.json')
    const json = await readJson(path, true)
    const config = (await readJson(join(dir, 'tokenizer_config.json'), false)) ?? {}
    return TextTokenizer.fromJson(json!, config, path)
  }

  /**
   * The tokenizer a GGUF file carries.
   * @throws InputError for a GGUF without one or with an unsupported kind (see `tokenizerJsonFromGguf`)
   */
  static async fromGguf(gguf: GgufFile): Promise<TextTokenizer> {
    const {json, config} = tokenizerJsonFromGguf(gguf)
    return TextTokenizer.fromJson(json, config, gguf.path)
  }

  /** Token ids of `text`; special tokens (BOS) added as the tokenizer's post-processor says unless `addSpecialTokens` is false. */
  encode(text: string, options: {addSpecialTokens?: boolean} = {}): number[] {
    return this.tokenizer.encode(text, {add_special_tokens: options.addSpecialTokens ?? true}).ids
  }

  /** Text of `ids` (special tokens left out by default). */
  decode(ids: readonly number[], options: {skipSpecialTokens?: boolean} = {}): string {
    return this.tokenizer.decode([...ids], {skip_special_tokens: options.skipSpecialTokens ?? true})
  }

  /** The token string of `id`, or undefined. */
  token(id: number): string | undefined {
    return this.tokenizer.id_to_token(id)
  }

  /** Vocabulary size, added tokens included. */
  get size(): number {
    return this.tokenizer.get_vocab(true).size
  }
}

async function readJson(path: string, required: boolean): Promise<Record<string, unknown> | undefined> {
  let size: number
  try {
    size = (await stat(path)).size
  } catch (error) {
    if (!required && (error as NodeJS.ErrnoException).code === 'ENOENT') return undefined
    throw new InputError('TOKENIZER_MISSING', `read ${path}: no such file (the model folder needs a tokenizer.json)`)
  }
  if (size > MAX_TOKENIZER_JSON_BYTES) throw new InputError('TOKENIZER_INVALID', `read ${path}: ${size} bytes is too large for a tokenizer file`)
  const text = await readRegularText(path, MAX_TOKENIZER_JSON_BYTES, (bytes) => new InputError('TOKENIZER_INVALID', `read ${path}: ${bytes} bytes is too large for a tokenizer file`))
  try {
    const value = JSON.parse(text) as unknown
    if (typeof value !== 'object' || value === null || Array.isArray(value)) throw new Error('not a JSON object')
    return value as Record<string, unknown>
  } catch (error) {
    throw new InputError('TOKENIZER_INVALID', `read ${path}: not valid JSON (${(error as Error).message})`)
  }
}

/**
 * The tokenizer of a model: a GGUF file's metadata, or a folder's tokenizer.json.
 * @throws InputError when neither is there
 */
export async function loadTokenizer(modelPath: string): Promise<TextTokenizer> {
  const info = await withFileContext('read', modelPath, () => stat(modelPath))
  if (info.isDirectory()) return TextTokenizer.fromFolder(modelPath)
  const gguf = await GgufFile.open(modelPath)
  try {
    return await TextTokenizer.fromGguf(gguf)
  } finally {
    await gguf.close()
  }
}
