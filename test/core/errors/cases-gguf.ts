/**
 * Error rows for GGUF models and adapters llama.cpp loads (quantize/merge
 * to GGUF, tokenizer conversion, export) and for node-llama-cpp as an
 * optional peer.
 */
import {existsSync, mkdirSync, writeFileSync} from 'node:fs'
import {join} from 'node:path'
import {LlamaCppSession, loadLlamaCpp} from '../../../src/core/engines/llama-cpp.js'
import {quantizeQ4_0} from '../../../src/core/quant/q4-0.js'
import {synthTokenizer} from '../../../src/core/synth/tokenizer.js'
import {ENGINES_DIR, STORIES, llamaCppMissing} from '../../helpers/llama-engine.js'
import {ErrorCase, RawTensor, g, gguf, lora, sparseFile, writeAdapter, writeSt} from './fixtures.js'

/** hidden 32 (one head), MLP 32, one layer, vocab 400. */
const CONFIG = {model_type: 'llama', hidden_size: 32, intermediate_size: 32, num_hidden_layers: 1, num_attention_heads: 1, num_key_value_heads: 1, vocab_size: 400, rms_norm_eps: 1e-5}
const f32 = (values: number[]) => new Uint8Array(Float32Array.from(values).buffer)
const w = (name: string, rows: number, cols: number, fill?: (i: number) => number): RawTensor => ({name, dtype: 'F32', shape: [rows, cols], ...(fill ? {data: f32(Array.from({length: rows * cols}, (_, i) => fill(i)))} : {})})
const UP = 'model.layers.0.mlp.up_proj.weight'

/**
 * A Llama-shaped model folder: model.safetensors with `tensors`, config.json (CONFIG with `config` over it),
 * and a SentencePiece-style tokenizer of 400 tokens unless `tokenizer` replaces the files.
 */
function llamaModel(dir: string, tensors: RawTensor[], config: object = {}, tokenizer?: Record<string, string | Buffer>): string {
  mkdirSync(dir, {recursive: true})
  writeSt(join(dir, 'model.safetensors'), tensors, {format: 'pt'})
  writeFileSync(join(dir, 'config.json'), JSON.stringify({...CONFIG, ...config}))
  const files = tokenizer ?? Object.fromEntries(Object.entries(synthTokenizer('spm', 400)!).map(([k, v]) => [k, JSON.stringify(v)]))
  for (const [name, content] of Object.entries(files)) writeFileSync(join(dir, name), content)
  return dir
}

/** `lora quantize --scheme q4_0` of a Llama-shaped model to a GGUF. */
const toGguf = (tensors: RawTensor[], config?: object, tokenizer?: Record<string, string | Buffer>) => (dir: string) => ['quantize', llamaModel(join(dir, 'm'), tensors, config, tokenizer), '--scheme', 'q4_0', '--out', join(dir, 'q.gguf')]

/** A GGUF file from metadata entries (key, type, value bytes) and F32 tensors named here. */
function ggufFile(path: string, kvs: Buffer[], tensors: Array<{name: string; ne: number[]}> = []): string {
  mkdirSync(join(path, '..'), {recursive: true})
  let offset = 0n
  const infos = tensors.map((t) => {
    const info = Buffer.concat([g.str(t.name), g.u32(t.ne.length), ...t.ne.map((n) => g.u64(BigInt(n))), g.u32(0), g.u64(offset)])
    offset += BigInt(Math.ceil((t.ne.reduce((a, b) => a * b, 1) * 4) / 32) * 32)
    return info
  })
  writeFileSync(path, gguf({tensors: BigInt(tensors.length), kvs: BigInt(kvs.length), body: [...kvs, ...infos], data: Number(offset)}))
  return path
}
const kvStr = (key: string, value: string) => Buffer.concat([g.str(key), g.u32(8), g.str(value)])

/** `lora export` of an adapter made of `tensors` for the Llama-shaped base. */
const exportOf = (tensors: RawTensor[] | undefined, config: Record<string, unknown> = {}, baseTensors: RawTensor[] = [w('model.layers.0.self_attn.q_proj.weight', 32, 32)]) => (dir: string) => [
  'export',
  writeAdapter(join(dir, 'ad'), tensors, config),
  '--base',
  llamaModel(join(dir, 'base'), baseTensors),
  '--out',
  join(dir, 'a.gguf'),
]

const engineSkip = (() => {
  try {
    return llamaCppMissing()
  } catch (error) {
    return undefined // LORA_REQUIRE_ENGINES: the engine rows run (and fail if it is absent)
  }
})()

export const GGUF_CASES: ErrorCase[] = [
  // GGUF models (quantize / merge to .gguf)
  {code: 'GGUF_UNSUPPORTED_DTYPE', exit: 2, input: 'a Llama model whose embedding is I32, to GGUF', cli: toGguf([{name: 'model.embed_tokens.weight', dtype: 'I32', shape: [400, 32]}])},
  {code: 'QUANT_NOT_FINITE', exit: 2, input: 'encoding NaN (a file holding it is refused on reading first: TENSOR_NOT_FINITE)', core: () => quantizeQ4_0(Float32Array.from({length: 32}, (_, i) => (i === 5 ? NaN : 0.1)))},
  {code: 'TENSOR_NOT_FINITE', exit: 2, input: 'a block weight holding NaN, to q4_0 GGUF', cli: toGguf([w(UP, 32, 32, (i) => (i === 5 ? NaN : 0.1))])},
  {code: 'QUANT_SCALE_OVERFLOW', exit: 2, input: 'a block weight of 1e9 (past the f16 scale), to q4_0 GGUF', cli: toGguf([w(UP, 32, 32, () => 1e9)])},
  {code: 'GGUF_NAME_TOO_LONG', exit: 2, input: 'a block number that makes a 68-byte llama.cpp name', cli: toGguf([w(`model.layers.${'9'.repeat(50)}.self_attn.v_proj.weight`, 32, 32)])},
  {code: 'GGUF_NEEDS_CONFIG', exit: 2, input: 'a bare model.safetensors (no config.json) to GGUF', cli: (dir) => ['quantize', writeSt(join(dir, 'model.safetensors'), [w(UP, 32, 32)]), '--scheme', 'q4_0', '--out', join(dir, 'q.gguf')]},
  {code: 'GGUF_UNSUPPORTED_MODEL', exit: 2, input: 'config.json model_type "bert" to GGUF', cli: toGguf([w(UP, 32, 32)], {model_type: 'bert'})},
  {code: 'GGUF_UNKNOWN_TENSOR', exit: 2, input: 'a tensor llama.cpp has no name for (model.extra.weight)', cli: toGguf([w('model.extra.weight', 32, 32)])},
  {code: 'GGUF_VOCAB_MISMATCH', exit: 2, input: 'an embedding of 10 rows with vocab_size 400', cli: toGguf([w('model.embed_tokens.weight', 10, 32)])},
  {
    code: 'GGUF_NO_ARCHITECTURE',
    exit: 2,
    input: 'quantize a GGUF without general.architecture',
    cli: (dir) => ['quantize', ggufFile(join(dir, 'm.gguf'), [kvStr('general.name', 'x')], [{name: 'blk.0.ffn_up.weight', ne: [32, 32]}]), '--scheme', 'q4_0', '--out', join(dir, 'q.gguf')],
  },
  {
    code: 'GGUF_BAD_METADATA',
    exit: 2,
    input: 'merge q_proj into a llama GGUF without attention.head_count',
    cli: (dir) => ['merge', '--base', ggufFile(join(dir, 'm.gguf'), [kvStr('general.architecture', 'llama')], [{name: 'blk.0.attn_q.weight', ne: [32, 32]}]), '--adapter', writeAdapter(join(dir, 'ad'), lora('model.layers.0.self_attn.q_proj', 2, 32, 32)), '--out', join(dir, 'o.gguf')],
  },
  {code: 'GGUF_IS_ADAPTER', exit: 2, input: 'export with a GGUF LoRA adapter as the base', cli: (dir) => ['export', writeAdapter(join(dir, 'ad'), lora('model.layers.0.self_attn.q_proj', 2, 32, 32)), '--base', ggufFile(join(dir, 'a.gguf'), [kvStr('general.architecture', 'llama'), kvStr('general.type', 'adapter')]), '--out', join(dir, 'o.gguf')]},
  // tokenizers
  {code: 'TOKENIZER_UNSUPPORTED', exit: 2, input: 'a WordPiece tokenizer.json', cli: toGguf([w(UP, 32, 32)], {}, {'tokenizer.json': JSON.stringify({model: {type: 'WordPiece', vocab: {a: 0}}})})},
  {code: 'TOKENIZER_VOCAB_MISMATCH', exit: 2, input: 'a 400-token tokenizer for vocab_size 300', cli: toGguf([w(UP, 32, 32)], {vocab_size: 300})},
  {code: 'SENTENCEPIECE_INVALID', exit: 2, input: 'tokenizer.model holding 4 bytes that are no protobuf', cli: toGguf([w(UP, 32, 32)], {}, {'tokenizer.model': Buffer.from([0x0a, 0x7f, 0x01, 0x02])})},
  {
    code: 'TOKENIZER_TOO_LARGE',
    exit: 2,
    input: 'a 300 MB tokenizer.json',
    cli: async (dir) => {
      const model = llamaModel(join(dir, 'm'), [w(UP, 32, 32)], {}, {})
      await sparseFile(join(model, 'tokenizer.json'), 300 << 20)
      return ['quantize', model, '--scheme', 'q4_0', '--out', join(dir, 'q.gguf')]
    },
  },
  // export
  {code: 'EXPORT_FULL_TENSORS', exit: 2, input: 'an adapter with a modules_to_save copy', cli: exportOf([...lora('model.layers.0.self_attn.q_proj', 2, 32, 32), w('base_model.model.lm_head.modules_to_save.default.weight', 400, 32)])},
  {code: 'EXPORT_NO_BASE_TENSOR', exit: 2, input: 'a module the base lacks', cli: exportOf(lora('model.layers.0.self_attn.k_proj', 2, 32, 32))},
  {code: 'EXPORT_SHAPE_MISMATCH', exit: 2, input: 'q_proj B·A [16, 32] against a base [32, 32]', cli: exportOf(lora('model.layers.0.self_attn.q_proj', 2, 32, 16))},
  {code: 'EXPORT_TIED_HEAD', exit: 2, input: 'an lm_head module on a base that ties it', cli: exportOf(lora('lm_head', 2, 32, 400))},
  {code: 'EXPORT_NOT_AN_ADAPTER', exit: 2, input: 'export a model.safetensors file', cli: (dir) => ['export', writeSt(join(dir, 'model.safetensors'), [w(UP, 32, 32)]), '--base', llamaModel(join(dir, 'base'), [w(UP, 32, 32)]), '--out', join(dir, 'a.gguf')]},
  // node-llama-cpp (an optional peer)
  {code: 'ENGINE_NOT_INSTALLED', exit: 2, input: 'node-llama-cpp where none is installed', core: (dir) => loadLlamaCpp({searchFrom: [dir]})},
  {
    code: 'ENGINE_VERSION',
    exit: 2,
    input: 'node-llama-cpp 3.0.0 installed',
    core: (dir) => {
      const pkg = join(dir, 'node_modules', 'node-llama-cpp')
      mkdirSync(pkg, {recursive: true})
      writeFileSync(join(pkg, 'package.json'), JSON.stringify({name: 'node-llama-cpp', version: '3.0.0', main: 'index.js'}))
      writeFileSync(join(pkg, 'index.js'), 'export {}\n')
      return loadLlamaCpp({searchFrom: [dir]})
    },
  },
  {
    code: 'ENGINE_REFUSED_MODEL',
    exit: 2,
    input: 'llama.cpp given a GGUF without tensors',
    skip: engineSkip,
    core: (dir) => LlamaCppSession.open({model: ggufFile(join(dir, 'm.gguf'), [kvStr('general.architecture', 'llama')]), searchFrom: [ENGINES_DIR], threads: 1}),
  },
  {
    code: 'ENGINE_REFUSED_ADAPTER',
    exit: 2,
    input: 'llama.cpp given a model GGUF as a LoRA adapter',
    skip: engineSkip ?? (existsSync(join(STORIES, 'gguf/stories260K.gguf')) ? undefined : `${STORIES} is absent`),
    core: () => LlamaCppSession.open({model: join(STORIES, 'gguf/stories260K.gguf'), adapters: [{path: join(STORIES, 'gguf/stories260K.gguf')}], searchFrom: [ENGINES_DIR], threads: 1}),
  },
]
