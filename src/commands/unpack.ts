import {Args, Flags} from '@oclif/core'
import {LoraCommand} from '../cli/base-command.js'
import {MAX_ADAPTERS, integer, path} from '../cli/flags.js'
import {UnpackResult, unpackAdapter} from '../core/unpack.js'
import {formatBytes} from '../core/units.js'

export default class Unpack extends LoraCommand {
  static override summary = 'Write one adapter of a lora-pack file back as a PEFT adapter folder.'
  static override description =
    'The adapter\'s slot is cut back to its own rank and written with the tensor names, dtype, adapter_config.json and safetensors metadata of the source, so the tensors are byte-identical to the packed source whenever the pack kept its dtype (or widened it). Tensors that were not packed (modules_to_save) are not restored.'
  static override examples = [
    {command: '<%= config.bin %> unpack pack.safetensors --adapter adapter-0003 --out ./adapter-0003', description: 'Unpack by name.'},
    {command: '<%= config.bin %> unpack pack.safetensors --slot 4 --out ./a4 --json', description: 'Unpack slot 4 (the fourth adapter); JSON summary.'},
  ]
  static override args = {
    file: Args.string({description: 'a lora-pack .safetensors file', required: true}),
  }
  static override flags = {
    adapter: Flags.string({description: 'the adapter\'s name in the pack', exactlyOne: ['adapter', 'slot']}),
    slot: integer({min: 1, max: MAX_ADAPTERS})({description: 'the adapter\'s slot (1..N; slot 0 is the null adapter)', exactlyOne: ['adapter', 'slot']}),
    out: path()({description: 'output adapter folder (must not exist unless --force)', required: true}),
    force: Flags.boolean({description: 'replace an existing output folder'}),
  }

  async run(): Promise<UnpackResult> {
    const {args, flags} = await this.parse(Unpack)
    const result = await unpackAdapter({file: args.file, adapter: flags.adapter, slot: flags.slot, out: flags.out, force: flags.force})
    for (const w of result.warnings) this.warnUser(w)
    if (!this.jsonEnabled()) {
      this.log(`wrote adapter "${result.name}" (slot ${result.slot}, ${result.modules} modules, ${result.dtype}, ${formatBytes(result.bytes)}) to ${result.out}${result.exact ? '' : ' (not bit-identical to the source: see the warning)'}`)
    }
    return result
  }
}
