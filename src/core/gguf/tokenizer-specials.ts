/**
 * Special tokens, BOS/EOS insertion and chat templates of a Hugging Face
 * tokenizer, as gguf-py's `SpecialVocab` finds them: ids named in
 * tokenizer_config.json (or special_tokens_map.json), else config.json's
 * `*_token_id`; whether BOS/EOS are added from tokenizer.json's
 * post-processor (what the fast tokenizer does), else tokenizer_config.json's
 * `add_bos_token` / `add_eos_token`; chat templates from tokenizer_config.json
 * or chat_template.jinja.
 */
import {join} from 'node:path'
import {InputError} from '../errors.js'
import type {GgufKV} from '../formats/gguf-types.js'
import {GgufValueType} from '../formats/gguf-types.js'
import {array, bool, str, u32} from './kv.js'
import type {JsonNode, TokenizerFiles} from './tokenizer-files.js'
import type {GgufVocabulary} from './vocabulary.js'

/** Hugging Face special-token names → GGUF key stems (`tokenizer.ggml.<stem>_token_id`; "seperator" is llama.cpp's spelling). */
const SPECIAL_KEYS: ReadonlyArray<readonly [hf: string, gguf: string]> = [
  ['bos', 'bos'],
  ['eos', 'eos'],
  ['unk', 'unknown'],
  ['sep', 'seperator'],
  ['pad', 'padding'],
  ['cls', 'cls'],
  ['mask', 'mask'],
]

export interface SpecialTokens {
  /** Token id per Hugging Face name (bos, eos, unk, sep, pad, cls, mask). */
  readonly ids: ReadonlyMap<string, number>
  readonly addBos: boolean
  readonly addEos: boolean
  /** The default chat template, and named ones. */
  readonly chatTemplate?: string
  readonly namedChatTemplates: ReadonlyMap<string, string>
}

function content(value: unknown): string | undefined {
  if (typeof value === 'string') return value
  if (typeof value === 'object' && value !== null && typeof (value as {content?: unknown}).content === 'string') return (value as {content: string}).content
  return undefined
}

/** The TemplateProcessing post-processor (directly or inside a Sequence), or undefined. */
function templateProcessing(node: JsonNode | null | undefined): JsonNode | undefined {
  if (!node) return undefined
  if (node.type === 'TemplateProcessing') return node
  if (node.type === 'Sequence' && Array.isArray(node.processors)) {
    for (const p of node.processors as JsonNode[]) if (p?.type === 'TemplateProcessing') return p
  }
  return undefined
}

/**
 * Find the special tokens.
 * @param vocabulary the converted tokens (ids are resolved against them)
 * @param defaultAddBos what the tokenizer class does when no file says (Llama's SentencePiece tokenizer adds BOS)
 * @throws InputError when a named special token is not in the vocabulary
 */
export function findSpecialTokens(files: TokenizerFiles, vocabulary: GgufVocabulary, defaultAddBos: boolean): SpecialTokens {
  const byText = new Map<string, number>()
  vocabulary.tokens.forEach((t, id) => {
    if (!byText.has(t)) byText.set(t, id)
  })
  const ids = new Map<string, number>()
  const configFile = join(files.folder, files.tokenizerConfig ? 'tokenizer_config.json' : 'special_tokens_map.json')
  for (const [hf] of SPECIAL_KEYS) {
    const text = content(files.tokenizerConfig?.[`${hf}_token`]) ?? content(files.specialTokensMap?.[`${hf}_token`])
    if (text !== undefined) {
      const id = byText.get(text)
      if (id === undefined) throw new InputError('TOKENIZER_INVALID', `read ${configFile}: ${hf}_token ${JSON.stringify(text)} is not a token of the vocabulary`)
      ids.set(hf, id)
      continue
    }
    let fromConfig = files.config?.[`${hf}_token_id`]
    if (Array.isArray(fromConfig)) fromConfig = fromConfig[0]
    if (typeof fromConfig === 'number' && Number.isInteger(fromConfig) && fromConfig >= 0 && fromConfig < vocabulary.tokens.length) ids.set(hf, fromConfig)
  }
  if (!ids.has('unk') && typeof files.tokenizerJson?.model.unk_token === 'string') {
    const id = byText.get(files.tokenizerJson.model.unk_token)
    if (id !== undefined) ids.set('unk', id)
  }
  let addBos = typeof files.tokenizerConfig?.add_bos_token === 'boolean' ? (files.tokenizerConfig.add_bos_token as boolean) : defaultAddBos
  let addEos = typeof files.tokenizerConfig?.add_eos_token === 'boolean' ? (files.tokenizerConfig.add_eos_token as boolean) : false
  const template = templateProcessing(files.tokenizerJson?.post_processor)
  if (template && Array.isArray(template.single)) {
    const single = template.single as Array<{SpecialToken?: {id?: string}}>
    const first = single[0]?.SpecialToken?.id
    const last = single.length > 1 ? single[single.length - 1]?.SpecialToken?.id : undefined
    addBos = first !== undefined
    addEos = last !== undefined
    if (first !== undefined && byText.has(first)) ids.set('bos', byText.get(first)!)
    if (last !== undefined && byText.has(last)) ids.set('eos', byText.get(last)!)
  } else if (files.tokenizerJson?.post_processor?.type === 'ByteLevel' && files.tokenizerConfig?.add_bos_token === undefined) {
    addBos = false
  }
  const named = new Map<string, string>()
  let chatTemplate: string | undefined
  const raw = files.tokenizerConfig?.chat_template ?? files.chatTemplateFile
  if (typeof raw === 'string') chatTemplate = raw
  else if (Array.isArray(raw)) {
    for (const entry of raw as Array<{name?: unknown; template?: unknown}>) {
      if (typeof entry?.name !== 'string' || typeof entry.template !== 'string') continue
      if (entry.name === 'default') chatTemplate = entry.template
      else named.set(entry.name, entry.template)
    }
  }
  if (chatTemplate === undefined && files.chatTemplateFile !== undefined) chatTemplate = files.chatTemplateFile
  return {ids, addBos, addEos, chatTemplate, namedChatTemplates: named}
}

/** The `tokenizer.ggml.*` and `tokenizer.chat_template*` entries for a converted vocabulary and its special tokens. */
export function tokenizerKV(vocabulary: GgufVocabulary, specials: SpecialTokens): GgufKV[] {
  const kv: GgufKV[] = [
    str('tokenizer.ggml.model', vocabulary.model),
    str('tokenizer.ggml.pre', vocabulary.pre),
    array('tokenizer.ggml.tokens', GgufValueType.STRING, vocabulary.tokens),
  ]
  if (vocabulary.scores) kv.push(array('tokenizer.ggml.scores', GgufValueType.FLOAT32, vocabulary.scores))
  kv.push(array('tokenizer.ggml.token_type', GgufValueType.INT32, vocabulary.types))
  if (vocabulary.merges) kv.push(array('tokenizer.ggml.merges', GgufValueType.STRING, vocabulary.merges))
  for (const [hf, gguf] of SPECIAL_KEYS) {
    const id = specials.ids.get(hf)
    if (id !== undefined) kv.push(u32(`tokenizer.ggml.${gguf}_token_id`, id))
  }
  kv.push(bool('tokenizer.ggml.add_bos_token', specials.addBos), bool('tokenizer.ggml.add_eos_token', specials.addEos))
  if (vocabulary.addSpacePrefix !== undefined) kv.push(bool('tokenizer.ggml.add_space_prefix', vocabulary.addSpacePrefix))
  if (specials.chatTemplate !== undefined) kv.push(str('tokenizer.chat_template', specials.chatTemplate))
  if (specials.namedChatTemplates.size > 0) {
    for (const [name, template] of specials.namedChatTemplates) kv.push(str(`tokenizer.chat_template.${name}`, template))
    kv.push(array('tokenizer.chat_templates', GgufValueType.STRING, [...specials.namedChatTemplates.keys()]))
  }
  return kv
}
