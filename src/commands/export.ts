import {Args, Flags} from '@oclif/core'
import {LoraCommand} from '../cli/base-command.js'
import {path} from '../cli/flags.js'
import {createProgressBar} from '../cli/progress-bar.js'
import {renderTable} from '../cli/table.js'
import {EXPORT_FORMATS, ExportResult, exportAdapters} from '../core/export/export-adapters.js'
import {formatBytes} from '../core/units.js'

export default class Export extends LoraCommand {
  static override summary = 'Export LoRA adapters for other engines: GGUF LoRA adapters that llama.cpp loads unmerged.'
  static override description =
    "Writes each adapter as a llama.cpp LoRA adapter for BASE (a Hugging Face folder or a llama.cpp GGUF of it): tensors named after the base's llama.cpp tensors, q/k rows in llama.cpp's RoPE order, and each module's own scaling (alpha/r, rsLoRA, rank_pattern, alpha_pattern) folded into lora_b with adapter.lora.alpha = 0, so llama.cpp computes what PEFT computes. Serve them with `llama-server -m base.gguf --lora a.gguf --lora b.gguf` and pick scales per request. DoRA adapters are refused."
  static override examples = [
    {command: '<%= config.bin %> export ./adapters/support --base ./base --format gguf --out support.gguf', description: 'One PEFT adapter, F16 tensors.'},
    {command: '<%= config.bin %> export pack.safetensors --adapter support --base base.gguf --format gguf --out support.gguf --dtype q8_0', description: 'One adapter of a pack, Q8_0 where rows allow.'},
    {command: '<%= config.bin %> export pack.safetensors --all --base base.gguf --format gguf --out ./gguf-adapters', description: 'Every adapter of a pack, one file each.'},
  ]
  static override args = {
    adapter: Args.string({description: 'PEFT adapter folder, or a pack file (with --adapter NAME or --all)', required: true}),
  }
  static override flags = {
    base: path()({description: 'the base model: Hugging Face folder (config.json) or llama.cpp GGUF', required: true}),
    format: Flags.option({description: 'output format', options: Object.keys(EXPORT_FORMATS) as Array<keyof typeof EXPORT_FORMATS>, default: 'gguf'})(),
    out: path()({description: 'output file, or folder with --all (must not exist unless --force)', required: true}),
    dtype: Flags.option({description: 'tensor type (q8_0 falls back to f16 for rows not a multiple of 32)', options: ['f32', 'f16', 'bf16', 'q8_0'] as const})(),
    adapter: Flags.string({description: 'from a pack: the adapter to export', exclusive: ['all']}),
    all: Flags.boolean({description: 'from a pack: export every adapter into the folder --out', exclusive: ['adapter']}),
    force: Flags.boolean({description: 'replace an existing output'}),
  }

  async run(): Promise<ExportResult> {
    const {args, flags} = await this.parse(Export)
    const bar = createProgressBar('export', this.interactive)
    let result: ExportResult
    try {
      result = await exportAdapters({
        input: args.adapter,
        base: flags.base,
        out: flags.out,
        format: flags.format,
        dtype: flags.dtype,
        adapter: flags.adapter,
        all: flags.all,
        force: flags.force,
        onProgress: bar.onProgress,
      })
    } finally {
      bar.stop()
    }
    const fallbacks = result.adapters.flatMap((a) => a.fallbacks)
    if (fallbacks.length > 0) this.warnUser(`${fallbacks.length} tensors written F16, not Q8_0 (${fallbacks[0]!.name}: ${fallbacks[0]!.reason}${fallbacks.length > 1 ? '; …' : ''})`)
    if (!this.jsonEnabled()) {
      this.log(`exported ${result.adapters.length} adapter${result.adapters.length === 1 ? '' : 's'} for ${result.architecture} (${result.format}, ${result.dtype.toLowerCase()}, adapter.lora.alpha = 0: scaling folded into lora_b)`)
      this.log(renderTable(['adapter', 'file', 'modules', 'tensors', 'bytes'], result.adapters.map((a) => [a.name, a.out, a.modules, a.tensors.length, formatBytes(a.bytes)])))
    }
    return result
  }
}
