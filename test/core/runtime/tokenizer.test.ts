/**
 * Tokenizers: stories260K's tokenizer.json and its GGUF's tokenizer.ggml.*
 * metadata give the ids of an independent SentencePiece encoder on the
 * fixture text; a byte-level BPE GGUF (gpt2 kind) converts to what the
 * canonical tokenizer.json gives; text streams hold back partial characters.
 */
import {readFileSync} from 'node:fs'
import {join} from 'node:path'
import {suite} from 'uvu'
import * as assert from 'uvu/assert'
import {STORIES, storiesMissing} from '../../helpers/decoder-fixtures.js'
import {parseGguf} from '../../helpers/gguf-reference.js'
import {rejection, skipIf, tempDir} from '../../helpers/index.js'
import {spmEncode} from '../../helpers/spm-reference.js'
import {GgufFile} from '../../../src/core/formats/gguf-reader.js'
import {GgufValueType} from '../../../src/core/formats/gguf-types.js'
import type {GgufKV} from '../../../src/core/formats/gguf-types.js'
import {GgufWriter} from '../../../src/core/formats/gguf-writer.js'
import {TextStream} from '../../../src/core/runtime/generate.js'
import {TextTokenizer, loadTokenizer} from '../../../src/core/runtime/tokenizer.js'

const missing = storiesMissing()
const stories = suite('runtime/tokenizer (stories260K)')
const real = skipIf(stories, missing)

real('tokenizer.json and the GGUF metadata give the reference SentencePiece ids on eval.txt', async () => {
  const text = readFileSync(join(STORIES, 'eval.txt'), 'utf8')
  const gguf = parseGguf(readFileSync(join(STORIES, 'gguf/stories260K.gguf')))
  const tokens = gguf.kv.get('tokenizer.ggml.tokens')!.value as string[]
  const scores = gguf.kv.get('tokenizer.ggml.scores')!.value as number[]
  const expected = spmEncode(text, tokens, scores, 1)
  assert.ok(expected.length > 2500)
  const fromJson = await loadTokenizer(join(STORIES, 'hf'))
  const fromGguf = await loadTokenizer(join(STORIES, 'gguf/stories260K.gguf'))
  assert.equal(fromJson.encode(text), expected)
  assert.equal(fromGguf.encode(text), expected)
  assert.is(fromJson.decode(expected), text)
  assert.is(fromGguf.decode(expected), text)
  assert.equal([fromJson.bosId, fromJson.eosIds, fromGguf.bosId, fromGguf.eosIds], [1, [2], 1, [2]])
})

real('characters outside the vocabulary fall back to bytes, as the reference does', async () => {
  const gguf = parseGguf(readFileSync(join(STORIES, 'gguf/stories260K.gguf')))
  const tokens = gguf.kv.get('tokenizer.ggml.tokens')!.value as string[]
  const scores = gguf.kv.get('tokenizer.ggml.scores')!.value as number[]
  const text = 'Zoë said “héllo” 🙂\tthen  left.'
  for (const path of ['hf', 'gguf/stories260K.gguf']) {
    const tokenizer = await loadTokenizer(join(STORIES, path))
    assert.equal(tokenizer.encode(text), spmEncode(text, tokens, scores, 1), path)
    assert.equal(tokenizer.encode(text, {addSpecialTokens: false}), spmEncode(text, tokens, scores, undefined), path)
  }
})

real('a text stream holds back a character until its last byte token arrives', async () => {
  const tokenizer = await loadTokenizer(join(STORIES, 'hf'))
  const prompt = tokenizer.encode('A smile')
  const emoji = tokenizer.encode('🙂!', {addSpecialTokens: false}) // ▁🙂! (the normalizer prepends the space)
  const stream = new TextStream((ids) => tokenizer.decode(ids), prompt)
  const pieces = emoji.map((id) => stream.push(id))
  assert.ok(pieces.filter((p) => p === '').length >= 3, JSON.stringify(pieces))
  assert.is(pieces.join('') + stream.flush(), ' 🙂!')
})

stories.run()

const test = suite('runtime/gguf-tokenizer')
const tmp = tempDir('lora-runtime-tok-')
test.after(() => tmp.cleanup())

/** GPT-2's byte → printable character map. */
function bytesToUnicode(): string[] {
  const keep = new Set<number>()
  for (let b = 33; b <= 126; b++) keep.add(b)
  for (let b = 161; b <= 172; b++) keep.add(b)
  for (let b = 174; b <= 255; b++) keep.add(b)
  let n = 0
  return Array.from({length: 256}, (_, b) => String.fromCodePoint(keep.has(b) ? b : 256 + n++))
}

const BYTE_CHARS = bytesToUnicode()
const MERGES = ['Ġ t', 'h e', 'Ġt he', 'i n', 'Ġ a', '1 2', 'Ġ c', 'a t', 'Ġc at', 'Ġ h']
const VOCAB = [...BYTE_CHARS, ...MERGES.map((m) => m.replace(' ', '')), '<|endoftext|>']

async function writeTokenizerGguf(path: string, extra: GgufKV[]): Promise<void> {
  const str = (key: string, value: string): GgufKV => ({key, type: GgufValueType.STRING, value})
  const arr = (key: string, itemType: (typeof GgufValueType)[keyof typeof GgufValueType], items: Array<string | number>): GgufKV => ({key, type: GgufValueType.ARRAY, value: {itemType, items}})
  const kv: GgufKV[] = [
    str('general.architecture', 'qwen2'),
    str('tokenizer.ggml.model', 'gpt2'),
    arr('tokenizer.ggml.tokens', GgufValueType.STRING, VOCAB),
    arr('tokenizer.ggml.token_type', GgufValueType.INT32, VOCAB.map((_, i) => (i === VOCAB.length - 1 ? 3 : 1))),
    arr('tokenizer.ggml.merges', GgufValueType.STRING, MERGES),
    {key: 'tokenizer.ggml.eos_token_id', type: GgufValueType.UINT32, value: VOCAB.length - 1},
    ...extra,
  ]
  const writer = await GgufWriter.create(path, kv, [])
  await writer.commit()
}

test('a byte-level BPE GGUF (gpt2) tokenizes as the canonical tokenizer.json does', async () => {
  const path = join(tmp.path, 'bpe.gguf')
  await writeTokenizerGguf(path, [])
  const canonical = await TextTokenizer.fromJson(
    {
      version: '1.0',
      added_tokens: [{id: VOCAB.length - 1, content: '<|endoftext|>', single_word: false, lstrip: false, rstrip: false, normalized: false, special: true}],
      normalizer: null,
      pre_tokenizer: {type: 'ByteLevel', add_prefix_space: false, trim_offsets: true, use_regex: true},
      post_processor: {type: 'ByteLevel', add_prefix_space: true, trim_offsets: false, use_regex: true},
      decoder: {type: 'ByteLevel', add_prefix_space: true, trim_offsets: true, use_regex: true},
      model: {type: 'BPE', dropout: null, unk_token: null, continuing_subword_prefix: '', end_of_word_suffix: '', fuse_unk: false, byte_fallback: false, vocab: Object.fromEntries(VOCAB.map((t, i) => [t, i])), merges: MERGES},
    },
    {eos_token: '<|endoftext|>'},
    'canonical',
  )
  const converted = await loadTokenizer(path)
  const text = "the cat in the hat 12 345, it's\n\n  done! ünïcödé<|endoftext|>"
  const ids = converted.encode(text)
  assert.equal(ids, canonical.encode(text))
  assert.equal(converted.encode(' the cat'), [VOCAB.indexOf('Ġthe'), VOCAB.indexOf('Ġcat')])
  assert.is(ids[ids.length - 1], VOCAB.length - 1)
  assert.is(converted.decode(ids, {skipSpecialTokens: false}), text)
  assert.equal(converted.eosIds, [VOCAB.length - 1])
})

test('GGUF tokenizers that cannot be converted are refused, naming the file', async () => {
  const unknownPre = join(tmp.path, 'pre.gguf')
  await writeTokenizerGguf(unknownPre, [{key: 'tokenizer.ggml.pre', type: GgufValueType.STRING, value: 'deepseek-coder'}])
  const a = await rejection(loadTokenizer(unknownPre))
  assert.is(a.code, 'GGUF_UNSUPPORTED_TOKENIZER')
  assert.ok(a.message.includes(unknownPre))
  const none = join(tmp.path, 'none.gguf')
  const writer = await GgufWriter.create(none, [{key: 'general.architecture', type: GgufValueType.STRING, value: 'llama'}], [])
  await writer.commit()
  assert.is((await rejection(loadTokenizer(none))).code, 'GGUF_NO_TOKENIZER')
  const g = await GgufFile.open(none)
  await g.close()
  assert.is((await rejection(loadTokenizer(tmp.path))).code, 'TOKENIZER_MISSING')
})

test.run()
