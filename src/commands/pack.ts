import {Args, Flags} from '@oclif/core'
import {LoraCommand} from '../cli/base-command.js'
import {path} from '../cli/flags.js'
import {createProgressBar} from '../cli/progress-bar.js'
import {renderPackResult} from '../cli/render-pack.js'
import {parseFloatDType} from '../core/dtype.js'
import {PackResult, packAdapters} from '../core/pack/pack-adapters.js'

export default class Pack extends LoraCommand {
  static override summary = 'Stack many LoRA adapters into one routed file (lora-pack).'
  static override description =
    'For every base module P targeted by any adapter, writes P.lora_A [S, R, in], P.lora_B [S, out, R] and P.lora_scaling [S] with S = N + 1 slots: slot 0 is the null adapter (all zeros), adapter k is slot k + 1, and R is the largest rank used on P (smaller ranks are zero-padded). A and B are copied byte for byte unless --dtype asks for a conversion. Inputs are adapter folders, folders of adapter folders, quoted globs (*, ?, [...], **) or --list FILE. modules_to_save tensors are not packed (listed in the manifest, with a warning).'
  static override examples = [
    {command: '<%= config.bin %> pack ./adapters --out adapters.lora-pack.safetensors', description: 'Pack every adapter folder inside ./adapters, in name order.'},
    {command: `<%= config.bin %> pack 'runs/**/adapter-*' --out pack.safetensors --dtype f16`, description: 'Pack the adapters a glob matches, stored as F16.'},
    {command: '<%= config.bin %> pack --list adapters.txt --out pack.safetensors --json', description: 'Pack the folders listed one per line; print the summary as JSON.'},
  ]
  static override strict = false
  static override args = {
    adapters: Args.string({description: 'adapter folders, folders of adapters, or globs (quote globs so the shell leaves them)'}),
  }
  static override flags = {
    out: path()({description: 'output .safetensors file (must not exist unless --force)', required: true}),
    list: path()({description: 'file with one adapter folder (or glob) per line; # starts a comment'}),
    dtype: Flags.option({description: 'stored dtype of A and B (default: the adapters\' common dtype, F32 when they differ)', options: ['f32', 'f16', 'bf16'] as const})(),
    'names-from': Flags.option({description: 'adapter names: the folder name, or the config\'s adapter_name/name', options: ['dir', 'config'] as const, default: 'dir'})(),
    'allow-mixed-base': Flags.boolean({description: 'accept adapters whose base_model_name_or_path differ (dims must still agree)'}),
    force: Flags.boolean({description: 'replace an existing output file'}),
  }

  async run(): Promise<PackResult> {
    const {argv, flags} = await this.parse(Pack)
    const bar = createProgressBar('pack', this.interactive)
    try {
      const result = await packAdapters({
        inputs: argv as string[],
        list: flags.list,
        out: flags.out,
        dtype: flags.dtype === undefined ? undefined : parseFloatDType(flags.dtype),
        namesFrom: flags['names-from'],
        allowMixedBase: flags['allow-mixed-base'],
        force: flags.force,
        onProgress: bar.onProgress,
      })
      bar.stop()
      for (const w of result.warnings) this.warnUser(w)
      if (!this.jsonEnabled()) this.log(renderPackResult(result))
      return result
    } finally {
      bar.stop()
    }
  }
}
