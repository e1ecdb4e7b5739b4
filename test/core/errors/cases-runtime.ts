/**
 * Error rows for the decoder runtime (`lora generate` and the runtime's entry
 * points), its tokenizers, and format detection.
 */
import {readFileSync, writeFileSync} from 'node:fs'
import {join} from 'node:path'
import {GgufValueType} from '../../../src/core/formats/gguf-types.js'
import type {GgufKV} from '../../../src/core/formats/gguf-types.js'
import {GgufWriter} from '../../../src/core/formats/gguf-writer.js'
import {generateTokens} from '../../../src/core/runtime/generate.js'
import {q4_0ToNBits} from '../../../src/core/runtime/linear-weight.js'
import {loadDecoder} from '../../../src/core/runtime/load-decoder.js'
import {loadTokenizer} from '../../../src/core/runtime/tokenizer.js'
import {ErrorCase, Fixtures, alterSt, lora, must, writeAdapter} from './fixtures.js'

const Q = 'model.layers.0.self_attn.q_proj'

/** Load the tiny decoder with `options`; a successful load is closed again. */
const load = (options: Omit<Parameters<typeof loadDecoder>[0], 'base'>, base?: (fx: Fixtures) => Promise<string>) => async (_dir: string, fx: Fixtures) => {
  const loaded = await loadDecoder({base: await (base ?? ((f) => f.decoder()))(fx), threads: 1, ...options})
  await loaded.close()
}

/** A copy of the tiny decoder with its config.json changed. */
const withConfig = (name: string, change: Record<string, unknown>) => async (fx: Fixtures) => {
  const dir = await fx.decoder({}, name)
  const config = JSON.parse(readFileSync(join(dir, 'config.json'), 'utf8')) as Record<string, unknown>
  writeFileSync(join(dir, 'config.json'), JSON.stringify({...config, ...change}))
  return dir
}

/** A GGUF file with these metadata entries and tensors (zeros). */
async function writeGguf(path: string, kv: GgufKV[], tensors: Array<{name: string; shape: number[]; type: 'F32' | 'I32'}> = []): Promise<string> {
  const writer = await GgufWriter.create(path, kv, tensors)
  for (const t of tensors) await writer.writeTensor(t.name, new Uint8Array(t.shape.reduce((a, b) => a * b, 1) * 4))
  await writer.commit()
  return path
}
const str = (key: string, value: string): GgufKV => ({key, type: GgufValueType.STRING, value})
const LLAMA = str('general.architecture', 'llama')
const TOKENS: GgufKV = {key: 'tokenizer.ggml.tokens', type: GgufValueType.ARRAY, value: {itemType: GgufValueType.STRING, items: ['<unk>', 'a']}}

/** A lora-pack of two adapters that fit the tiny decoder's q_proj. */
const decoderPack = async (dir: string) => {
  const out = join(dir, 'p.safetensors')
  await must(['pack', writeAdapter(join(dir, 'a'), lora(Q, 2, 16, 16)), writeAdapter(join(dir, 'b'), lora(Q, 2, 16, 16)), '--out', out])
  return out
}

export const RUNTIME_CASES: ErrorCase[] = [
  // lora generate
  {code: 'TOKENIZER_MISSING', exit: 2, input: 'generate with a model folder that has no tokenizer.json', cli: async (_dir, fx) => ['generate', '--base', await fx.decoder(), '--prompt', 'x']},
  {code: 'DECODER_NOT_A_MODEL', exit: 2, input: 'generate --base of a safetensors file', cli: async (_dir, fx) => ['generate', '--base', join(await fx.decoder(), 'model.safetensors'), '--prompt', 'x']},

  // loading a decoder
  {code: 'DECODER_BAD_CONFIG', exit: 2, input: '2 attention heads on 3 key/value heads', core: load({}, withConfig('heads', {num_key_value_heads: 3}))},
  {code: 'DECODER_UNSUPPORTED_ARCH', exit: 2, input: 'model_type gpt2', core: load({}, withConfig('gpt2', {model_type: 'gpt2'}))},
  {code: 'DECODER_UNSUPPORTED_ROPE', exit: 2, input: 'rope_scaling yarn', core: load({}, withConfig('yarn', {rope_scaling: {rope_type: 'yarn', factor: 4}}))},
  {code: 'DECODER_BAD_SHAPE', exit: 2, input: 'intermediate_size 33 in the config, 32 in the weights', core: load({}, withConfig('inter', {intermediate_size: 33}))},
  {
    code: 'DECODER_MISSING_TENSOR',
    exit: 2,
    input: 'a decoder without model.norm.weight',
    core: load({}, async (fx) => {
      const dir = await fx.decoder({}, 'no-norm')
      alterSt(join(dir, 'model.safetensors'), join(dir, 'model.safetensors'), (f) => void (f.tensors = f.tensors.filter((t) => t.name !== 'model.norm.weight')))
      return dir
    }),
  },
  {
    code: 'DECODER_UNSUPPORTED_TYPE',
    exit: 2,
    input: 'a GGUF llama whose rope_freqs.weight is I32',
    core: load({}, async (fx) => writeGguf(join(fx.root, 'rope-i32.gguf'), [LLAMA], [{name: 'rope_freqs.weight', shape: [4], type: 'I32'}])),
  },
  {code: 'BAD_MAX_POSITIONS', exit: 2, input: 'maxPositions 0', core: load({maxPositions: 0})},
  {code: 'BAD_ADAPTER_WEIGHT', exit: 2, input: 'an adapter weight of NaN', core: async (dir, fx) => load({adapters: [{path: writeAdapter(join(dir, 'ad'), lora(Q, 2, 16, 16)), weight: NaN}]})(dir, fx)},
  {code: 'ADAPTER_FAN_IN_FAN_OUT', exit: 2, input: 'an adapter with fan_in_fan_out (a Conv1D model\'s)', core: async (dir, fx) => load({adapters: [{path: writeAdapter(join(dir, 'ad'), lora(Q, 2, 16, 16), {fan_in_fan_out: true})}]})(dir, fx)},
  {code: 'ADAPTER_MODULE_MISMATCH', exit: 2, input: 'an adapter for a q_proj of 8 inputs', core: async (dir, fx) => load({adapters: [{path: writeAdapter(join(dir, 'ad'), lora(Q, 2, 8, 16))}]})(dir, fx)},
  {code: 'RUNTIME_ROUTED_AND_ADAPTERS', exit: 2, input: 'routed adapters and adapters for every request', core: (dir, fx) => load({routed: {pack: join(dir, 'p'), strategy: 'gather'}, adapters: [{path: join(dir, 'a')}]})(dir, fx)},
  {code: 'RUNTIME_ROUTED_MERGE', exit: 2, input: 'routed adapters with merge', core: (dir, fx) => load({routed: {pack: join(dir, 'p'), strategy: 'gather'}, merge: true})(dir, fx)},
  {code: 'RUNTIME_STRATEGY', exit: 2, input: 'routing a pack with the merged strategy', core: async (dir, fx) => load({routed: {pack: await decoderPack(dir), strategy: 'merged'}})(dir, fx)},
  {
    code: 'RUNTIME_NO_SUCH_ADAPTER',
    exit: 2,
    input: 'a routed request for an adapter the pack does not hold',
    core: async (dir, fx) => {
      const loaded = await loadDecoder({base: await fx.decoder(), routed: {pack: await decoderPack(dir), strategy: 'gather'}, threads: 1})
      try {
        await loaded.model.forward({tokens: [[1, 2]], adapters: ['nope']})
      } finally {
        await loaded.close()
      }
    },
  },
  {code: 'RUNTIME_BAD_BLOCKS', exit: 2, input: 'Q4_0 blocks of 17 bytes for a row of 32', core: () => q4_0ToNBits(new Uint8Array(17), 1, 32)},

  // running it
  {code: 'FORWARD_EMPTY', exit: 2, input: 'forward with an empty row', core: async (_dir, fx) => (await fx.model()).model.forward({tokens: [[]]})},
  {code: 'TOKEN_OUT_OF_RANGE', exit: 2, input: 'token id 999 of a vocabulary of 32', core: async (_dir, fx) => (await fx.model()).model.forward({tokens: [[1, 999]]})},
  {code: 'FORWARD_CACHE_ROWS', exit: 2, input: 'one row of tokens with a cache of two', core: async (_dir, fx) => (await fx.model()).model.forward({tokens: [[1]], cache: (await fx.model()).model.emptyCache(2)})},
  {code: 'CONTEXT_TOO_LONG', exit: 2, input: '17 tokens for a model run at 16 positions', core: async (_dir, fx) => (await fx.model()).model.forward({tokens: [new Array<number>(17).fill(1)]})},
  {code: 'EMPTY_PROMPT', exit: 2, input: 'generate from no tokens', core: async (_dir, fx) => generateTokens((await fx.model()).model, {prompt: [], maxTokens: 1})},
  {code: 'BAD_TEMPERATURE', exit: 2, input: 'temperature -1', core: async (_dir, fx) => generateTokens((await fx.model()).model, {prompt: [1], maxTokens: 1, temperature: -1})},

  // tokenizers
  {code: 'TOKENIZER_INVALID', exit: 2, input: 'tokenizer.json "{"', core: (dir) => (writeFileSync(join(dir, 'tokenizer.json'), '{'), loadTokenizer(dir))},
  {code: 'GGUF_NO_TOKENIZER', exit: 2, input: 'a GGUF without tokenizer.ggml.model', core: async (dir) => loadTokenizer(await writeGguf(join(dir, 'x.gguf'), [LLAMA]))},
  {code: 'GGUF_UNSUPPORTED_TOKENIZER', exit: 2, input: 'tokenizer.ggml.model "bert"', core: async (dir) => loadTokenizer(await writeGguf(join(dir, 'x.gguf'), [LLAMA, str('tokenizer.ggml.model', 'bert'), TOKENS]))},
  {
    code: 'GGUF_BAD_TOKENIZER',
    exit: 2,
    input: 'a llama tokenizer without tokenizer.ggml.scores',
    core: async (dir) => loadTokenizer(await writeGguf(join(dir, 'x.gguf'), [LLAMA, str('tokenizer.ggml.model', 'llama'), TOKENS])),
  },
]

