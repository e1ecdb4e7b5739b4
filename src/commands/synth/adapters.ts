import {Flags} from '@oclif/core'
import {LoraCommand, parseIntegerList} from '../../cli/base-command.js'
import {parseTargets, llamaDimFlags} from '../../cli/llama-flags.js'
import {createProgressBar} from '../../cli/progress-bar.js'
import {renderSynthAdapters} from '../../cli/render-synth.js'
import {parseFloatDType} from '../../core/dtype.js'
import {UsageError} from '../../core/errors.js'
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
    out: Flags.string({description: 'output folder (must not exist unless --force)', required: true}),
    count: Flags.integer({description: 'number of adapters', default: 8, min: 1}),
    rank: Flags.integer({description: 'rank of every adapter', min: 1, exclusive: ['ranks']}),
    ranks: Flags.string({description: 'ranks assigned in turn, e.g. 8,16,32', exclusive: ['rank']}),
    alpha: Flags.string({description: 'lora_alpha (default 2·r)'}),
    ...llamaDimFlags,
    targets: Flags.string({description: 'projections to adapt (q_proj,k_proj,… or all)', default: 'q_proj,k_proj,v_proj,o_proj'}),
    dtype: Flags.option({description: 'stored dtype', options: ['f16', 'bf16', 'f32'] as const, default: 'f16'})(),
    seed: Flags.integer({description: 'random seed', default: 0}),
    'shared-subspace': Flags.string({description: 'share of B drawn from a per-module shared basis, 0..1', default: '0'}),
    force: Flags.boolean({description: 'replace an existing output folder'}),
  }

  async run(): Promise<SynthAdaptersResult> {
    const {flags} = await this.parse(SynthAdapters)
    const sharedSubspace = Number(flags['shared-subspace'])
    if (!Number.isFinite(sharedSubspace)) throw new UsageError('BAD_FLAG', `--shared-subspace must be a number between 0 and 1 (got "${flags['shared-subspace']}")`)
    const alpha = flags.alpha === undefined ? undefined : Number(flags.alpha)
    if (alpha !== undefined && !(Number.isFinite(alpha) && alpha > 0)) throw new UsageError('BAD_FLAG', `--alpha must be a positive number (got "${flags.alpha}")`)
    const bar = createProgressBar('synth')
    try {
      const result = await synthesizeAdapters({
        out: flags.out,
        count: flags.count,
        ranks: flags.ranks ? parseIntegerList(flags.ranks, '--ranks') : [flags.rank ?? 16],
        alpha,
        hidden: flags.hidden,
        intermediate: flags.intermediate,
        layers: flags.layers,
        targets: parseTargets(flags.targets),
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
