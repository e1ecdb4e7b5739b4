import {Flags} from '@oclif/core'
import {LoraCommand} from '../cli/base-command.js'
import {MAX_ADAPTERS, MAX_RANK, integer, path, size} from '../cli/flags.js'
import {renderTable} from '../cli/table.js'
import {parseFloatDType} from '../core/dtype.js'
import {PlanReport, planFromFiles} from '../core/plan/plan-from-files.js'
import {formatBytes} from '../core/units.js'

export default class Plan extends LoraCommand {
  static override summary = 'Show which LoRA placement fits a memory budget for N stacked adapters.'
  static override description =
    'Deployment notes on LoRA recommend, under a memory limit, to adapt first the attention matrices, then the embeddings, then the MLP, then every matrix, and only then to raise the rank. This prints that ladder for the given base: trainable parameters per adapter and the bytes of N stacked adapters as `lora pack` stores them (slot 0 and rank padding included), and marks the furthest stage that fits.'
  static override examples = [
    {command: '<%= config.bin %> plan --config config.json --adapters 1000 --budget 4GiB', description: 'Placement ladder for 1,000 rank-16 adapters.'},
    {command: '<%= config.bin %> plan --base ./base --adapters 256 --budget 512MB --rank 8 --shared-b 16', description: 'Also show the bytes with one shared B of width 16 per module.'},
  ]
  static override flags = {
    base: path()({description: 'base model (file, index or folder); or --config', exactlyOne: ['base', 'config']}),
    config: path()({description: 'Hugging Face config.json of a Llama-family model; or --base', exactlyOne: ['base', 'config']}),
    adapters: integer({min: 1, max: MAX_ADAPTERS})({description: 'number of adapters served together', required: true}),
    budget: size()({description: 'memory for the stacked adapters, e.g. 512MB, 4GiB', required: true}),
    rank: integer({min: 1, max: MAX_RANK})({description: 'LoRA rank R', default: 16}),
    dtype: Flags.option({description: 'stored dtype', options: ['f16', 'bf16', 'f32'] as const, default: 'f16'})(),
    'shared-b': integer({min: 1, max: MAX_RANK})({description: 'also show bytes with one shared B of width K per module'}),
  }

  async run(): Promise<PlanReport> {
    const {flags} = await this.parse(Plan)
    const report = await planFromFiles({
      base: flags.base,
      config: flags.config,
      adapters: flags.adapters,
      budget: flags.budget,
      rank: flags.rank,
      dtype: parseFloatDType(flags.dtype)!,
      sharedB: flags['shared-b'],
    })
    if (!this.jsonEnabled()) this.log(renderPlan(report))
    return report
  }
}

function renderPlan(r: PlanReport): string {
  const shared = r.shared_b !== undefined
  const headers = ['stage', 'r', 'modules', 'params/adapter', `${r.adapters} adapters`, 'fits', ...(shared ? [`shared B K=${r.shared_b}`, 'fits'] : [])]
  const rows = r.stages.map((s) => [
    `${s.stage === r.furthest_fitting ? '> ' : '  '}${s.stage}`,
    s.rank,
    s.modules,
    s.params_per_adapter,
    formatBytes(s.bytes),
    s.fits ? 'yes' : 'no',
    ...(shared ? [formatBytes(s.shared_b_bytes!), s.shared_b_fits ? 'yes' : 'no'] : []),
  ])
  return [
    `${r.source}: ${r.adapters} adapters (${r.slots} slots with the null slot 0), ${r.dtype}, budget ${formatBytes(r.budget)}`,
    '',
    renderTable(headers, rows),
    '',
    r.furthest_fitting === null ? 'Nothing fits: not even attention-only adapters at this rank.' : `Furthest stage that fits: ${r.furthest_fitting}.`,
    ...(shared ? [r.furthest_fitting_shared_b === null ? `With shared B (K=${r.shared_b}): nothing fits.` : `With shared B (K=${r.shared_b}): ${r.furthest_fitting_shared_b}.`] : []),
  ].join('\n')
}
