import {Flags} from '@oclif/core'
import {LoraCommand} from '../../cli/base-command.js'
import {MAX_ADAPTERS, MAX_ALPHA, MAX_RANK, integer, integerList, number, path, seedFlag} from '../../cli/flags.js'
import {llamaDimFlags, targets} from '../../cli/llama-flags.js'
import {createProgressBar} from '../../cli/progress-bar.js'
import {renderSynthAdapters} from '../../cli/render-synth.js'
import {parseFloatDType} from '../../core/dtype.js'
import {SynthAdaptersResult, synthesizeAdapters} from '../../core/synth/adapters.js'

export default class SynthAdapters extends LoraCommand {
  static override summary = 'Write N deterministic PEFT LoRA adapters for a Llama-style base.'
  static override description =
    'Adapters go to <out>/adapter-0000, adapter-0001, … The same --seed gives byte-identical files. --shared-subspace F draws each B partly from one column space shared per module (F=1: all adapters share it), as real adapters of one base are correlated.'
  static override examples = [
    {command: '<%= config.bin %> synth adapters --out ./ad --count 8', description: 'Eight rank-16 adapters on q,k,v,o.'},
    {command: '<%= config.bin %> synth adapters --out ./ad --count 64 --ranks 8,16,32 --shared-subspace 0.8', description: 'Mixed ranks with a shared subspace.'},
  ]
  static override flags = {
    out: path()({description: 'output folder (must not exist unless --force)', required: true}),
    count: integer({min: 1, max: MAX_ADAPTERS})({description: 'number of adapters', default: 8}),
    rank: integer({min: 1, max: MAX_RANK})({description: 'rank of every adapter', exclusive: ['ranks']}),
    ranks: integerList({min: 1, max: MAX_RANK})({description: 'ranks assigned in turn, e.g. 8,16,32', exclusive: ['rank']}),
    alpha: number({above: 0, max: MAX_ALPHA})({description: 'lora_alpha, > 0 (default 2·r)'}),
    ...llamaDimFlags,
    targets: targets()({description: 'projections to adapt (q_proj,k_proj,… or all)', default: ['q_proj', 'k_proj', 'v_proj', 'o_proj'], defaultHelp: async () => 'q_proj,k_proj,v_proj,o_proj'}),
    dtype: Flags.option({description: 'stored dtype', options: ['f16', 'bf16', 'f32'] as const, default: 'f16'})(),
    seed: seedFlag('random seed'),
    'shared-subspace': number({min: 0, max: 1})({description: 'share of B drawn from a per-module shared basis, 0..1', default: 0}),
    force: Flags.boolean({description: 'replace an existing output folder'}),
  }

  async run(): Promise<SynthAdaptersResult> {
    const {flags} = await this.parse(SynthAdapters)
    const sharedSubspace = flags['shared-subspace']
    const alpha = flags.alpha
    const bar = createProgressBar('synth')
    try {
      const result = await synthesizeAdapters({
        out: flags.out,
        count: flags.count,
        ranks: flags.ranks ?? [flags.rank ?? 16],
        alpha,
        hidden: flags.hidden,
        intermediate: flags.intermediate,
        layers: flags.layers,
        targets: flags.targets,
        dtype: parseFloatDType(flags.dtype)!,
        seed: flags.seed,
        sharedSubspace,
        force: flags.force,
        onProgress: bar.onProgress,
      })
      bar.stop()
      if (!this.jsonEnabled()) this.log(renderSynthAdapters(result))
      return result
    } finally {
      bar.stop()
    }
  }
}
