import {Args, Flags} from '@oclif/core'
import {LoraCommand} from '../cli/base-command.js'
import {MAX_BLOCK_SIZE, integer, path} from '../cli/flags.js'
import {createProgressBar} from '../cli/progress-bar.js'
import {renderTable} from '../cli/table.js'
import {UsageError} from '../core/errors.js'
import {QuantizeModelResult, quantizeModel} from '../core/model-io/quantize-model.js'
import {QUANT_SCHEMES, QUANT_SCHEME_NAMES} from '../core/quant/schemes.js'
import {blockSizeHelp, encodingThreads, encodingThreadsFlag, schemeDescriptions, schemesSizedBy, schemesStoredAs} from '../cli/scheme-flags.js'
import {formatBytes} from '../core/units.js'

/** Kept tensors listed in the human view before "… N more". */
const MAX_KEPT_ROWS = 20

export default class Quantize extends LoraCommand {
  static override summary = `Quantize a base model's linear weights (${QUANT_SCHEME_NAMES.join(', ')}), tensor by tensor.`
  static override description =
    `Only the 2-D linear weights inside the repeated blocks are quantized by default (embeddings, lm_head, norms and biases are kept); --include replaces that rule with globs on tensor names, --exclude removes names. Schemes: ${schemeDescriptions()}. Tensors a scheme cannot hold stay in their float dtype and are listed.`
  static override examples = [
    {command: '<%= config.bin %> quantize ./base --out ./base-nf4 --scheme nf4', description: 'bitsandbytes NF4, block 64.'},
    {command: '<%= config.bin %> quantize ./base --out base-q4_0.gguf --scheme q4_0', description: 'A GGUF file with Q4_0 weights.'},
    {command: '<%= config.bin %> quantize ./base --out ./base-int4 --scheme int4 --group-size 64 --exclude "*.down_proj.weight"', description: 'int4 groups of 64, keeping down_proj in float.'},
  ]
  static override args = {
    model: Args.string({description: 'model folder, .safetensors file, model.safetensors.index.json, or a llama.cpp .gguf (q4_0 only)', required: true}),
  }
  static override flags = {
    out: path()({description: `output folder (${schemesStoredAs('safetensors').join(', ')}) or .gguf file (${schemesStoredAs('gguf').join(', ')})`, required: true}),
    scheme: Flags.option({description: 'quantization scheme', options: QUANT_SCHEME_NAMES, required: true})(),
    'block-size': integer({min: 1, max: MAX_BLOCK_SIZE})({description: `elements per block (${blockSizeHelp('--block-size')})`, exclusive: ['group-size']}),
    'group-size': integer({min: 2, max: MAX_BLOCK_SIZE})({description: `group size along each row (${blockSizeHelp('--group-size')})`, exclusive: ['block-size']}),
    'double-quant': Flags.boolean({description: 'nf4: quantize the absmax values too (8-bit, blocks of 256)'}),
    format: Flags.option({description: `output format (${schemesStoredAs('gguf').join('/')} → gguf, ${schemesStoredAs('safetensors').join('/')} → safetensors)`, options: ['safetensors', 'gguf'] as const})(),
    include: Flags.string({description: 'quantize tensors matching this glob instead of the default rule (repeatable)', multiple: true}),
    exclude: Flags.string({description: 'never quantize tensors matching this glob (repeatable)', multiple: true}),
    force: Flags.boolean({description: 'replace an existing output'}),
    threads: encodingThreadsFlag,
  }

  async run(): Promise<QuantizeModelResult> {
    const {args, flags} = await this.parse(Quantize)
    if (flags['group-size'] !== undefined && QUANT_SCHEMES[flags.scheme].blockSizeFlag !== '--group-size') {
      throw new UsageError('BAD_FLAG', `--group-size applies to ${schemesSizedBy('--group-size').join(', ')} (got --scheme ${flags.scheme}); use --block-size`)
    }
    const bar = createProgressBar('quantize', this.interactive)
    try {
      const result = await quantizeModel({
        model: args.model,
        out: flags.out,
        scheme: flags.scheme,
        blockSize: flags['block-size'] ?? flags['group-size'],
        doubleQuant: flags['double-quant'],
        format: flags.format,
        include: flags.include,
        exclude: flags.exclude,
        force: flags.force,
        threads: encodingThreads(flags.threads),
        onProgress: bar.onProgress,
      })
      bar.stop()
      if (result.kept.length > 0) this.warnUser(`${result.kept.length} selected tensors stay in float: ${result.kept[0]!.name}: ${result.kept[0]!.reason}${result.kept.length > 1 ? ' (…)' : ''}`)
      if (!this.jsonEnabled()) {
        this.log(
          `wrote ${result.out} (${result.format}): ${result.quantized} tensors in ${result.scheme} (block ${result.block_size}${result.double_quant ? ', double quant' : ''}), ` +
            `${((100 * result.quantized_parameters) / Math.max(1, result.parameters)).toFixed(1)}% of ${(result.parameters / 1e6).toFixed(1)} M parameters; ${formatBytes(result.bytes_in)} → ${formatBytes(result.bytes_out)}`,
        )
        if (result.kept.length > 0) {
          this.log(`\nkept in float (${result.kept.length}):`)
          this.log(renderTable(['tensor', 'reason'], result.kept.slice(0, MAX_KEPT_ROWS).map((k) => [k.name, k.reason])))
          if (result.kept.length > MAX_KEPT_ROWS) this.log(`… ${result.kept.length - MAX_KEPT_ROWS} more (--json lists all)`)
        }
      }
      return result
    } finally {
      bar.stop()
    }
  }
}
