import {Args, Flags} from '@oclif/core'
import {LoraCommand} from '../cli/base-command.js'
import {MAX_RANK, integer, number, parseNumberValue, path} from '../cli/flags.js'
import {createProgressBar} from '../cli/progress-bar.js'
import {renderCompressReport, renderSweepReport} from '../cli/render-shared-b.js'
import {CompressReport, SweepReport, compressFile, sweepFile} from '../core/compress/compress-file.js'
import type {RankSelection} from '../core/compress/rank-selection.js'
import {parseFloatDType} from '../core/dtype.js'
import {UsageError} from '../core/errors.js'

export default class Compress extends LoraCommand {
  static override summary = 'Share one B per module across packed adapters, and report what it saves and costs.'
  static override description =
    'For every module, the optimal shared basis U [out, K] (top-K left singular vectors of all adapters\' deltas) replaces the adapters\' B; each adapter keeps A\' = Uᵀ·ΔW [K, in] with its scaling folded in. Writes a lora-pack-shared-b file and reports, per module and in total, the bytes before and after and the relative error ‖ΔW − U·A\'‖/‖ΔW‖ of every adapter, measured on the stored values. INPUT is a lora-pack file, or adapter folders / globs (packed first). --sweep prints the savings/error table over K without writing.'
  static override examples = [
    {command: '<%= config.bin %> compress pack.safetensors --out shared.safetensors --rank 16', description: 'Width 16 everywhere.'},
    {command: '<%= config.bin %> compress pack.safetensors --out shared.safetensors --max-error 0.05', description: 'The smallest K per module that keeps every adapter within 5%.'},
    {command: '<%= config.bin %> compress ./adapters --sweep', description: 'The table to choose K from: bytes, savings and errors for K = 1, 2, 4, …'},
  ]
  static override strict = false
  static override args = {
    input: Args.string({description: 'a lora-pack file, or adapter folders / folders of adapters / globs', required: true}),
  }
  static override flags = {
    out: path()({description: 'output .safetensors file (lora-pack-shared-b)', exclusive: ['sweep']}),
    rank: integer({min: 1, max: MAX_RANK})({description: 'K: the shared width, the same for every module', exclusive: ['max-error', 'savings', 'sweep']}),
    'max-error': number({above: 0, below: 1})({description: 'per module, the smallest K whose largest per-adapter relative error is ≤ E (0 < E < 1)', exclusive: ['rank', 'savings', 'sweep']}),
    savings: Flags.custom<number>({helpValue: '<pct>', parse: async (input) => parseNumberValue(input.replace(/%$/, ''), '--savings', {above: 0, below: 100})})({description: 'per module, the largest K that still saves at least PCT percent of its bytes (0 < PCT < 100)', exclusive: ['rank', 'max-error', 'sweep']}),
    sweep: Flags.boolean({description: 'print bytes, savings and errors for K = 1, 2, 4, … without writing a file'}),
    normalize: Flags.boolean({description: 'weigh every adapter equally (unit-norm deltas) when choosing the basis'}),
    dtype: Flags.option({description: 'stored dtype (default: the input pack\'s)', options: ['f32', 'f16', 'bf16'] as const})(),
    force: Flags.boolean({description: 'replace an existing output file'}),
    'allow-growth': Flags.boolean({description: 'write the file even when it is larger than the input pack (refused otherwise)'}),
  }

  async run(): Promise<CompressReport | SweepReport> {
    const {argv, flags} = await this.parse(Compress)
    const inputs = argv as string[]
    const dtype = flags.dtype ? parseFloatDType(flags.dtype) : undefined
    const bar = createProgressBar('compress', this.interactive)
    try {
      if (flags.sweep) {
        const report = await sweepFile({inputs, dtype, normalize: flags.normalize, onProgress: bar.onProgress})
        bar.stop()
        for (const w of report.warnings) this.warnUser(w)
        if (!this.jsonEnabled()) this.log(renderSweepReport(report))
        return report
      }
      if (!flags.out) throw new UsageError('COMPRESS_NO_OUT', 'compress: --out FILE is required (or use --sweep to only see the table)')
      const report = await compressFile({inputs, out: flags.out, selection: selectionOf(flags), dtype, normalize: flags.normalize, force: flags.force, allowGrowth: flags['allow-growth'], onProgress: bar.onProgress})
      bar.stop()
      for (const w of report.warnings) this.warnUser(w)
      if (!this.jsonEnabled()) this.log(renderCompressReport(report))
      return report
    } finally {
      bar.stop()
    }
  }
}

function selectionOf(flags: {rank?: number; 'max-error'?: number; savings?: number}): RankSelection {
  if (flags.rank !== undefined) return {rank: flags.rank}
  if (flags['max-error'] !== undefined) return {maxError: flags['max-error']}
  if (flags.savings !== undefined) return {savings: flags.savings}
  throw new UsageError('COMPRESS_NO_SELECTION', 'compress: give one of --rank K, --max-error E or --savings PCT (or --sweep)')
}
