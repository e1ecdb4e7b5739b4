/**
 * Tokenizers as llama.cpp reads them: stories260K's tokenizer.json gives the
 * vocabulary llama.cpp's own GGUF of the model holds; a tokenizer.model
 * (SentencePiece protobuf, written here from that GGUF's pieces) gives its
 * scores exactly; byte-level BPE gets the right pre-tokenizer; every
 * tokenizer llama.cpp would read differently is refused with the way out.
 */
import {existsSync, mkdirSync, readFileSync, writeFileSync} from 'node:fs'
import {join} from 'node:path'
import {suite} from 'uvu'
import * as assert from 'uvu/assert'
import {GgufFile} from '../../../src/core/formats/gguf-reader.js'
import type {GgufArray} from '../../../src/core/formats/gguf-types.js'
import {toByteLevel} from '../../../src/core/gguf/byte-level.js'
import {convertTokenizer} from '../../../src/core/gguf/tokenizer.js'
import {TokenType} from '../../../src/core/gguf/vocabulary.js'
import {synthTokenizer} from '../../../src/core/synth/tokenizer.js'
import {rejection, skipIf, tempDir} from '../../helpers/index.js'
import {STORIES} from '../../helpers/llama-engine.js'

const test = suite('gguf/tokenizer')
const stories = skipIf(test, existsSync(join(STORIES, 'hf/tokenizer.json')) ? undefined : `${STORIES} is absent`)

async function storiesGguf(): Promise<{tokens: string[]; scores: number[]; types: number[]}> {
  const g = await GgufFile.open(join(STORIES, 'gguf/stories260K.gguf'))
  try {
    const items = (k: string) => (g.value(k) as GgufArray).items as never[]
    return {tokens: items('tokenizer.ggml.tokens'), scores: items('tokenizer.ggml.scores'), types: items('tokenizer.ggml.token_type')}
  } finally {
    await g.close()
  }
}

// ---- a SentencePiece ModelProto writer (protobuf wire format), for fixtures
function varint(n: number): number[] {
  const out: number[] = []
  do {
    let b = n % 128
    n = Math.floor(n / 128)
    if (n > 0) b |= 0x80
    out.push(b)
  } while (n > 0)
  return out
}
const field = (no: number, wire: number) => varint(no * 8 + wire)
const bytesField = (no: number, b: Uint8Array | number[]) => [...field(no, 2), ...varint(b.length), ...b]
function sentencePieceModel(pieces: Array<{piece: string; score: number; type: number}>, modelType: number): Buffer {
  const out: number[] = []
  for (const p of pieces) {
    const score = Buffer.alloc(4)
    score.writeFloatLE(p.score)
    out.push(...bytesField(1, [...bytesField(1, Buffer.from(p.piece, 'utf8')), ...field(2, 5), ...score, ...field(3, 0), ...varint(p.type)]))
  }
  out.push(...bytesField(2, [...field(3, 0), ...varint(modelType), ...field(35, 0), 1]))
  out.push(...bytesField(3, [...bytesField(1, Buffer.from('identity')), ...field(3, 0), 1]))
  return Buffer.from(out)
}

function writeFiles(dir: string, files: Record<string, unknown>): string {
  mkdirSync(dir, {recursive: true})
  for (const [name, content] of Object.entries(files)) writeFileSync(join(dir, name), typeof content === 'string' || Buffer.isBuffer(content) ? content : JSON.stringify(content))
  return dir
}

stories("stories260K's tokenizer.json: the tokens and types of llama.cpp's own GGUF, scores in the same order, BOS added", async () => {
  const t = await convertTokenizer(join(STORIES, 'hf'), 512)
  const g = await storiesGguf()
  assert.is(t.converter, 'SentencePiece-style tokenizer.json')
  assert.equal(t.vocabulary.tokens, g.tokens)
  assert.equal(t.vocabulary.types, g.types)
  for (let i = 259; i < 511; i++) assert.is(Math.sign(t.vocabulary.scores![i]! - t.vocabulary.scores![i + 1]!), Math.sign(g.scores[i]! - g.scores[i + 1]!), `score order at ${i}`)
  const kv = new Map(t.kv.map((e) => [e.key, e.value]))
  assert.equal(
    ['tokenizer.ggml.model', 'tokenizer.ggml.pre', 'tokenizer.ggml.bos_token_id', 'tokenizer.ggml.eos_token_id', 'tokenizer.ggml.unknown_token_id', 'tokenizer.ggml.add_bos_token', 'tokenizer.ggml.add_eos_token', 'tokenizer.ggml.add_space_prefix'].map((k) => kv.get(k)),
    ['llama', 'default', 1, 2, 0, true, false, true],
  )
})

stories('a tokenizer.model (SentencePiece BPE) is read as llama.cpp reads it: pieces, scores and types as stored', async () => {
  const dir = tempDir()
  try {
    const g = await storiesGguf()
    const pieces = g.tokens.map((piece, i) => ({piece, score: g.scores[i]!, type: g.types[i]!}))
    const folder = writeFiles(join(dir.path, 'm'), {
      'tokenizer.model': sentencePieceModel(pieces, 2),
      'tokenizer_config.json': readFileSync(join(STORIES, 'hf/tokenizer_config.json'), 'utf8'),
    })
    const t = await convertTokenizer(folder, 520)
    assert.is(t.converter, 'SentencePiece model')
    assert.equal(t.vocabulary.tokens.slice(0, 512), g.tokens)
    assert.equal(t.vocabulary.scores!.slice(0, 512), g.scores)
    assert.equal(t.vocabulary.types.slice(0, 512), g.types)
    // padded to the model's vocabulary, as llama.cpp's converter pads
    assert.equal(t.vocabulary.tokens.slice(512), Array.from({length: 8}, (_, i) => `[PAD${512 + i}]`))
    assert.ok(t.vocabulary.types.slice(512).every((x) => x === TokenType.UNUSED))
    // a unigram model is not what llama.cpp's "llama" tokenizer computes
    writeFileSync(join(folder, 'tokenizer.model'), sentencePieceModel(pieces, 1))
    const e = await rejection(convertTokenizer(folder, 512))
    assert.is(e.code, 'TOKENIZER_UNSUPPORTED')
    assert.match(e.message, /tokenizer\.model: the SentencePiece model is unigram, which llama\.cpp's "llama" tokenizer only approximates, so llama\.cpp would tokenize text differently; pass a llama\.cpp GGUF of the base instead \(--base model\.gguf\)/)
  } finally {
    dir.cleanup()
  }
})

test('byte-level BPE: the GGUF "gpt2" model with the pre-tokenizer llama.cpp implements (qwen2, gpt-2), merges, special tokens as CONTROL, chat template', async () => {
  const dir = tempDir()
  try {
    const qwen = await convertTokenizer(writeFiles(join(dir.path, 'q'), synthTokenizer('byte-level', 1000, 'qwen2')!), 1024)
    const kv = new Map(qwen.kv.map((e) => [e.key, e.value]))
    assert.equal([kv.get('tokenizer.ggml.model'), kv.get('tokenizer.ggml.pre'), kv.get('tokenizer.ggml.add_bos_token'), kv.get('tokenizer.ggml.eos_token_id')], ['gpt2', 'qwen2', false, 999])
    assert.match(kv.get('tokenizer.chat_template') as string, /<\|im_start\|>/)
    assert.is(qwen.vocabulary.merges!.length, 1000 - 256 - 3)
    assert.is(qwen.vocabulary.merges![0], 'Ġ a')
    assert.equal(qwen.vocabulary.types.slice(997, 1000), [TokenType.CONTROL, TokenType.CONTROL, TokenType.CONTROL])
    assert.is(qwen.vocabulary.tokens.length, 1024)
    assert.is(qwen.vocabulary.tokens[256], toByteLevel(' a'))
    const gpt2 = await convertTokenizer(writeFiles(join(dir.path, 'g'), synthTokenizer('byte-level', 400, 'gpt-2')!), 400)
    assert.equal([gpt2.vocabulary.model, gpt2.vocabulary.pre], ['gpt2', 'gpt-2'])
  } finally {
    dir.cleanup()
  }
})

test('refusals name the reason and the way out: no tokenizer files, an unknown pre-tokenizer, a missing byte token, a merge llama.cpp would make that the tokenizer does not, WordPiece', async () => {
  const dir = tempDir()
  try {
    const none = await rejection(convertTokenizer(writeFiles(join(dir.path, 'none'), {'config.json': {}}), 10))
    assert.is(none.code, 'TOKENIZER_MISSING')
    const spm = synthTokenizer('spm', 400)!
    const tj = spm['tokenizer.json'] as {model: {vocab: Record<string, number>; merges: string[]}; pre_tokenizer: unknown; normalizer: unknown}
    const cases: Array<[string, (t: typeof tj) => void, RegExp]> = [
      ['byte', (t) => ((t.model.vocab['<0x41'] = t.model.vocab['<0x41>']!), delete t.model.vocab['<0x41>']), /byte token <0x41> is missing/],
      ['merge', (t) => (t.model.merges = t.model.merges.filter((m) => m !== '▁a b')), /llama\.cpp would merge "▁a" \+ "b" into "▁ab" \(id \d+\), a merge the tokenizer does not have/],
      ['split', (t) => ((t.normalizer = null), (t.pre_tokenizer = {type: 'Metaspace', replacement: '▁', prepend_scheme: 'first', split: true})), /splits the text into words/],
    ]
    for (const [name, mutate, message] of cases) {
      const copy = JSON.parse(JSON.stringify(tj)) as typeof tj
      mutate(copy)
      const e = await rejection(convertTokenizer(writeFiles(join(dir.path, name), {'tokenizer.json': copy}), 400))
      assert.is(e.code, 'TOKENIZER_UNSUPPORTED', name)
      assert.match(e.message, message)
      assert.match(e.message, /so llama\.cpp would tokenize text differently; pass a llama\.cpp GGUF of the base instead \(--base model\.gguf\), whose tokenizer is copied as it is$/)
    }
    const bl = synthTokenizer('byte-level', 400, 'gpt-2')!
    ;(bl['tokenizer.json'] as {pre_tokenizer: unknown}).pre_tokenizer = {type: 'Whitespace'}
    const pre = await rejection(convertTokenizer(writeFiles(join(dir.path, 'pre'), bl), 400))
    assert.match(pre.message, /its pre-tokenizer \{"type":"Whitespace"\} is none of llama\.cpp's \(gpt-2, qwen2, llama-bpe\)/)
    const wp = await rejection(convertTokenizer(writeFiles(join(dir.path, 'wp'), {'tokenizer.json': {model: {type: 'WordPiece', vocab: {a: 0}}}}), 1))
    assert.match(wp.message, /a WordPiece tokenizer has no llama\.cpp equivalent that lora writes/)
    const small = await rejection(convertTokenizer(writeFiles(join(dir.path, 'small'), spm), 300))
    assert.is(small.code, 'TOKENIZER_VOCAB_MISMATCH')
  } finally {
    dir.cleanup()
  }
})

test.run()
