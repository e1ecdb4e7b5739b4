import {mkdirSync, writeFileSync} from 'node:fs'
import {join} from 'node:path'
import {suite} from 'uvu'
import * as assert from 'uvu/assert'
import {InputError} from '../../../src/core/errors.js'
import {LoraAdapter, parseAdapterKey} from '../../../src/core/formats/peft-adapter.js'
import {AdapterTensor, loraKeys, peftLoraConfig, writeAdapter} from '../../../src/core/formats/peft-adapter-writer.js'
import {REAL_ADAPTERS, realAdaptersMissing, rejection, skipIf, tempDir} from '../../helpers/index.js'

const test = suite('peft-adapter')

test('parses PEFT key names with and without prefix and adapter-name infix', () => {
  assert.equal(parseAdapterKey('base_model.model.model.layers.0.self_attn.q_proj.lora_A.weight'), {role: 'A', kind: 'linear', module: 'model.layers.0.self_attn.q_proj'})
  assert.equal(parseAdapterKey('model.layers.0.mlp.up_proj.lora_B.default.weight'), {role: 'B', kind: 'linear', module: 'model.layers.0.mlp.up_proj'})
  assert.equal(parseAdapterKey('base_model.model.model.embed_tokens.lora_embedding_A'), {role: 'A', kind: 'embedding', module: 'model.embed_tokens'})
  assert.equal(parseAdapterKey('base_model.model.model.embed_tokens.lora_embedding_B.default'), {role: 'B', kind: 'embedding', module: 'model.embed_tokens'})
  assert.equal(parseAdapterKey('base_model.model.x.lora_magnitude_vector'), {role: 'dora', module: 'x'})
  assert.equal(parseAdapterKey('base_model.model.classifier.weight'), {role: 'extra'})
  assert.equal(parseAdapterKey('base_model.model.classifier.modules_to_save.lora_A.weight'), {role: 'extra'})
})

/** One module `m.q_proj` with A [r, 4] and B [3, r]. */
async function adapterFolder(dir: string, config: Record<string, unknown>, tensors?: AdapterTensor[]): Promise<string> {
  const [aKey, bKey] = loraKeys('m.q_proj')
  const r = (config.r as number) ?? 2
  await writeAdapter(dir, peftLoraConfig({r, lora_alpha: 4, target_modules: ['q_proj'], ...config}), tensors ?? [
    {name: aKey, dtype: 'F32', shape: [r, 4], data: new Float32Array(r * 4).fill(0.5)},
    {name: bKey, dtype: 'F32', shape: [3, r], data: new Float32Array(3 * r).fill(0.25)},
  ])
  return dir
}

test('loads a well-formed adapter: modules, dims, rank, scaling', async () => {
  const tmp = tempDir()
  try {
    const dir = await adapterFolder(join(tmp.path, 'ad'), {r: 2, lora_alpha: 4})
    const adapter = await LoraAdapter.load(dir)
    const m = adapter.module('m.q_proj')
    assert.equal({in: m.in, out: m.out, r: m.r, scaling: m.scaling, kind: m.kind}, {in: 4, out: 3, r: 2, scaling: 2, kind: 'linear'})
    assert.is(adapter.name, 'ad')
    assert.equal([...(await adapter.readB('m.q_proj')).toFloat32()], new Array(6).fill(0.25))
    await adapter.close()
  } finally {
    tmp.cleanup()
  }
})

const refusals: Array<{name: string; setup: (dir: string) => Promise<void>; code: string; message: RegExp}> = [
  {
    name: 'B whose rank disagrees with r',
    setup: async (dir) => {
      const [aKey, bKey] = loraKeys('m.q_proj')
      await adapterFolder(dir, {r: 2}, [
        {name: aKey, dtype: 'F32', shape: [2, 4], data: new Float32Array(8)},
        {name: bKey, dtype: 'F32', shape: [3, 8], data: new Float32Array(24)},
      ])
    },
    code: 'ADAPTER_RANK_MISMATCH',
    message: /tensor "base_model\.model\.m\.q_proj\.lora_B\.weight" has shape \[3, 8\] but r = 2 \(expected \[3, 2\]\)/,
  },
  {
    name: 'A whose rank disagrees with rank_pattern',
    setup: async (dir) => {
      await adapterFolder(dir, {r: 2, rank_pattern: {q_proj: 4}})
    },
    code: 'ADAPTER_RANK_MISMATCH',
    message: /lora_A\.weight" has shape \[2, 4\] but r = 4 \(expected \[4, 4\]\)/,
  },
  {
    name: 'an A without its B',
    setup: async (dir) => {
      const [aKey] = loraKeys('m.q_proj')
      await adapterFolder(dir, {r: 2}, [{name: aKey, dtype: 'F32', shape: [2, 4], data: new Float32Array(8)}])
    },
    code: 'ADAPTER_UNPAIRED',
    message: /module "m\.q_proj" has lora_A but no lora_B/,
  },
  {
    name: 'a DoRA adapter',
    setup: async (dir) => {
      await adapterFolder(dir, {r: 2, use_dora: true})
    },
    code: 'ADAPTER_DORA_UNSUPPORTED',
    message: /DoRA adapter/,
  },
  {
    name: 'convolution LoRA',
    setup: async (dir) => {
      const [aKey, bKey] = loraKeys('m.conv')
      await adapterFolder(dir, {r: 2}, [
        {name: aKey, dtype: 'F32', shape: [2, 4, 1, 1], data: new Float32Array(8)},
        {name: bKey, dtype: 'F32', shape: [3, 2, 1, 1], data: new Float32Array(6)},
      ])
    },
    code: 'ADAPTER_UNSUPPORTED_LAYER',
    message: /only 2-D \(linear and embedding\) LoRA/,
  },
  {
    name: 'a folder with only a pickle',
    setup: async (dir) => {
      mkdirSync(dir)
      writeFileSync(join(dir, 'adapter_config.json'), JSON.stringify(peftLoraConfig({r: 2})))
      writeFileSync(join(dir, 'adapter_model.bin'), 'pickle')
    },
    code: 'ADAPTER_PICKLE_ONLY',
    message: /only adapter_model\.bin \(a pickle\)/,
  },
  {
    name: 'a folder without adapter_config.json',
    setup: async (dir) => {
      mkdirSync(dir)
      writeFileSync(join(dir, 'adapter_model.safetensors'), '')
    },
    code: 'ADAPTER_NO_CONFIG',
    message: /no adapter_config\.json/,
  },
  {
    name: 'a config that is not JSON',
    setup: async (dir) => {
      await adapterFolder(dir, {r: 2})
      writeFileSync(join(dir, 'adapter_config.json'), '{r: 2')
    },
    code: 'PEFT_CONFIG_INVALID',
    message: /adapter_config\.json: not valid JSON/,
  },
]

for (const c of refusals) {
  test(`refuses ${c.name}`, async () => {
    const tmp = tempDir()
    try {
      const dir = join(tmp.path, 'ad')
      await c.setup(dir)
      const error = await rejection(LoraAdapter.load(dir))
      assert.instance(error, InputError)
      assert.is(error.code, c.code)
      assert.match(error.message, c.message)
      assert.not.match(error.message, /\n/)
    } finally {
      tmp.cleanup()
    }
  })
}

// ------------------------------------------------------------------ the real corpus (../shared/real-adapters, PROVENANCE.md)

interface Expected {
  modules: number
  r: number
  dtype: string
  /** A module name the folder must contain, with its [in, out]. */
  sample?: [string, number, number]
  extras?: number
  warning?: RegExp
}

const loads: Record<string, Expected> = {
  'gpt2-seqcls-cattn-r8': {modules: 12, r: 8, dtype: 'F32', sample: ['transformer.h.0.attn.c_attn', 768, 2304], extras: 1},
  'gpt2-r4a1-cattn-cproj': {modules: 36, r: 4, dtype: 'F32', sample: ['transformer.h.5.mlp.c_proj', 3072, 768]},
  'gpt2-r4a16-cattn-cproj': {modules: 36, r: 4, dtype: 'F32', sample: ['transformer.h.11.attn.c_proj', 768, 768]},
  'distilgpt2-cattn-fifofalse': {modules: 6, r: 8, dtype: 'F32'},
  'tiny-gpt2-r4': {modules: 6, r: 4, dtype: 'F32', sample: ['transformer.h.1.mlp.c_proj', 8, 2]},
  'distilbert-seqcls-qv-r8': {modules: 12, r: 8, dtype: 'F32', extras: 4},
  'distilbert-classifier-target-odd': {modules: 1, r: 8, dtype: 'F32', sample: ['classifier', 768, 6], extras: 8, warning: /modules_to_save wrapper/},
  'distilbert-sst2-r4-dotted-targets': {modules: 12, r: 4, dtype: 'F32', sample: ['distilbert.transformer.layer.0.attention.q_lin', 768, 768]},
  'bert-dense-suffix-r4': {modules: 73, r: 4, dtype: 'F32', sample: ['bert.encoder.layer.0.intermediate.dense', 768, 3072], extras: 2},
  'roberta-fullpath-targets-r36': {modules: 4, r: 36, dtype: 'F32', sample: ['roberta.encoder.layer.10.attention.self.query', 768, 768], extras: 4},
  'codebert-automodel-qv-r8': {modules: 24, r: 8, dtype: 'F32', sample: ['encoder.layer.0.attention.self.query', 768, 768]},
  'qwen2.5-0.5b-qv-r8': {modules: 48, r: 8, dtype: 'F32', sample: ['model.layers.0.self_attn.v_proj', 896, 128]},
  'gemma3-270m-qkvo-r4': {modules: 72, r: 4, dtype: 'F32', sample: ['model.layers.0.self_attn.o_proj', 1024, 640]},
  'opt-125m-qv-r16-bf16': {modules: 24, r: 16, dtype: 'BF16'},
  'open-calm-1b-qkv-r1-f16': {modules: 24, r: 1, dtype: 'F16', sample: ['gpt_neox.layers.0.attention.query_key_value', 2048, 6144]},
  'gpt-neo-125m-qv-r4': {modules: 24, r: 4, dtype: 'F32', sample: ['transformer.h.0.attn.attention.q_proj', 768, 768]},
  'flan-t5-base-q-r16': {modules: 36, r: 16, dtype: 'F32', warning: /"V" matched no LoRA tensors/},
  'vit-age-qv-r16-cls': {modules: 24, r: 16, dtype: 'F32', extras: 2},
  'sd15-unet-peft-r4': {modules: 96, r: 4, dtype: 'F32', sample: ['mid_block.attentions.0.transformer_blocks.0.attn2.to_k', 768, 1280]},
}

const refused: Record<string, {code: string; message: RegExp}> = {
  '_malformed/lfs-pointer': {code: 'SAFETENSORS_HEADER_TOO_LARGE', message: /Git LFS pointer/},
  '_malformed/crlf-2-bytes': {code: 'ADAPTER_NO_CONFIG', message: /no adapter_config\.json/},
  '_non-peft/flux-aitoolkit-f16': {code: 'ADAPTER_NO_CONFIG', message: /not a PEFT adapter folder \(found lora\.safetensors/},
  '_non-peft/sd-diffusers-lora-updown-bf16': {code: 'ADAPTER_NO_CONFIG', message: /kohya\/diffusers layouts are not supported/},
  '_non-peft/sd15-kohya-like-flattened': {code: 'ADAPTER_NO_CONFIG', message: /not a PEFT adapter folder/},
}

const realTest = skipIf(test, realAdaptersMissing())
{
  for (const [folder, e] of Object.entries(loads)) {
    realTest(`real adapter ${folder} loads`, async () => {
      const adapter = await LoraAdapter.load(join(REAL_ADAPTERS, folder))
      try {
        assert.is(adapter.modules.size, e.modules)
        assert.is(adapter.dtype, e.dtype)
        for (const m of adapter.modules.values()) assert.is(m.r, e.r)
        if (e.sample) {
          const m = adapter.module(e.sample[0])
          assert.equal([m.in, m.out], [e.sample[1], e.sample[2]])
        }
        assert.is(adapter.extraTensors.length, e.extras ?? 0)
        if (e.warning) assert.ok(adapter.warnings.some((w) => e.warning!.test(w)), adapter.warnings.join(' | '))
      } finally {
        await adapter.close()
      }
    })
  }
  for (const [folder, e] of Object.entries(refused)) {
    realTest(`real folder ${folder} is refused: ${e.code}`, async () => {
      const error = await rejection(LoraAdapter.load(join(REAL_ADAPTERS, folder)))
      assert.instance(error, InputError)
      assert.is(error.code, e.code)
      assert.match(error.message, e.message)
    })
  }
  realTest('the malformed files themselves are refused with the documented reason', async () => {
    const {SafetensorsFile} = await import('../../../src/core/formats/safetensors-file.js')
    const short = await rejection(SafetensorsFile.open(join(REAL_ADAPTERS, '_malformed/crlf-2-bytes/pytorch_lora_weights.safetensors')))
    assert.is(short.code, 'SAFETENSORS_TOO_SHORT')
    assert.match(short.message, /file is 2 bytes, shorter than the 8-byte header length prefix/)
  })
  realTest('every folder of the corpus is covered by this table', async () => {
    const {readdirSync} = await import('node:fs')
    const top = readdirSync(REAL_ADAPTERS, {withFileTypes: true}).filter((d) => d.isDirectory() && !d.name.startsWith('_')).map((d) => d.name)
    const nested = ['_malformed', '_non-peft'].flatMap((g) => readdirSync(join(REAL_ADAPTERS, g)).map((n) => `${g}/${n}`))
    assert.equal([...top, ...nested].sort(), [...Object.keys(loads), ...Object.keys(refused)].sort())
  })
}

test.run()
