import {Flags} from '@oclif/core'
import {LoraCommand} from '../../cli/base-command.js'
import {MAX_VOCAB, integer, path, seedFlag, size} from '../../cli/flags.js'
import {llamaDimFlags} from '../../cli/llama-flags.js'
import {createProgressBar} from '../../cli/progress-bar.js'
import {renderSynthBase} from '../../cli/render-synth.js'
import {parseFloatDType} from '../../core/dtype.js'
import {SynthBaseResult, synthesizeBase} from '../../core/synth/base.js'

export default class SynthBase extends LoraCommand {
  static override summary = 'Write a deterministic Llama-style base model (safetensors + config.json + a small tokenizer).'
  static override description =
    'Weights are drawn with the scale of trained models (about 1/sqrt(fan_in)), so merge and quantization errors are realistic. --shard-size splits the checkpoint into shards with a model.safetensors.index.json. A small tokenizer (tokenizer.json: SentencePiece-style for llama, byte-level BPE for qwen2) is written too, so the base converts to a GGUF llama.cpp loads; --arch qwen2 adds q/k/v biases.'
  static override examples = [
    {command: '<%= config.bin %> synth base --out ./base --hidden 512 --intermediate 1376 --layers 4', description: 'A small base in one file.'},
    {command: '<%= config.bin %> synth base --out ./base --hidden 2048 --intermediate 5632 --layers 8 --shard-size 500MB', description: 'A sharded 0.5 B-parameter base.'},
    {command: '<%= config.bin %> synth base --out ./qwen --arch qwen2 --vocab 4096', description: 'A Qwen2-shaped base (q/k/v biases, byte-level tokenizer).'},
  ]
  static override flags = {
    out: path()({description: 'output folder (must not exist unless --force)', required: true}),
    arch: Flags.option({description: 'architecture (config.json model_type)', options: ['llama', 'qwen2'] as const, default: 'llama'})(),
    ...llamaDimFlags,
    vocab: integer({min: 1, max: MAX_VOCAB})({description: 'vocabulary size', default: 32000}),
    dtype: Flags.option({description: 'stored dtype', options: ['f16', 'bf16', 'f32'] as const, default: 'f16'})(),
    seed: seedFlag('random seed'),
    'shard-size': size()({description: 'maximum shard size, e.g. 500MB or 2GiB (default: one file)'}),
    force: Flags.boolean({description: 'replace an existing output folder'}),
  }

  async run(): Promise<SynthBaseResult> {
    const {flags} = await this.parse(SynthBase)
    const bar = createProgressBar('synth base')
    try {
      const result = await synthesizeBase({
        out: flags.out,
        arch: flags.arch,
        hidden: flags.hidden,
        intermediate: flags.intermediate,
        layers: flags.layers,
        vocab: flags.vocab,
        dtype: parseFloatDType(flags.dtype)!,
        seed: flags.seed,
        shardSize: flags['shard-size'],
        force: flags.force,
        onProgress: bar.onProgress,
      })
      bar.stop()
      if (!this.jsonEnabled()) this.log(renderSynthBase(result))
      return result
    } finally {
      bar.stop()
    }
  }
}
