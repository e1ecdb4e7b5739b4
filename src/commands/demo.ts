import {Flags} from '@oclif/core'
import {LoraCommand} from '../cli/base-command.js'
import {path, seedFlag} from '../cli/flags.js'
import {createProgressBar} from '../cli/progress-bar.js'
import {explainStep, renderDemoStart, renderDemoSummary, renderStep} from '../cli/render-demo.js'
import {DemoReport, runDemo} from '../core/demo/run-demo.js'
import {DEMO_SIZES, DEMO_SIZE_NAMES} from '../core/demo/settings.js'

export default class Demo extends LoraCommand {
  static override summary = 'Run the whole toolchain on synthetic data and explain what it shows: synth, pack, compress, merge + quantize, bench.'
  static override description =
    `No downloads, no arguments. Synthesizes a small Llama-style base and ${DEMO_SIZES.full.adapters} adapters of ranks ${DEMO_SIZES.full.ranks.join('/')} sharing a subspace, packs them, compresses them with a shared B (sweep, then the smallest K within the error bound), merges one adapter and quantizes to ${DEMO_SIZES.full.schemes.join(' and ')} with the quality report, and benchmarks serving with ${DEMO_SIZES.full.bench.counts.join(', ')} adapters on the CPU (throughput table and SVG plot). About a minute on 2 cores. Files go to a temporary folder removed at the end unless --out DIR keeps them.`
  static override examples = [
    {command: '<%= config.bin %> demo', description: 'The demo, explained step by step.'},
    {command: '<%= config.bin %> demo --out ./demo', description: 'Keep the base, adapters, pack, shared-B file, merged models, bench report and plot in ./demo.'},
    {command: '<%= config.bin %> demo --size small --json', description: 'A seconds-long run of every step (smoke test); every step\'s report as one JSON document.'},
  ]
  static override flags = {
    out: path()({description: 'keep the artifacts in this folder (refused when it is not empty, unless --force)'}),
    force: Flags.boolean({description: 'write into a non-empty --out folder, replacing the demo\'s files there (nothing else is touched)'}),
    seed: seedFlag('random seed of the synthetic weights, probes and benchmark inputs'),
    size: Flags.option({description: `full: hidden ${DEMO_SIZES.full.hidden}, ${DEMO_SIZES.full.layers} layers, ${DEMO_SIZES.full.adapters} adapters; small: hidden ${DEMO_SIZES.small.hidden}, ${DEMO_SIZES.small.layers} layer, ${DEMO_SIZES.small.adapters} adapters, in seconds`, options: DEMO_SIZE_NAMES, default: 'full'})(),
  }

  async run(): Promise<DemoReport> {
    const {flags} = await this.parse(Demo)
    const human = !this.jsonEnabled()
    const bar = createProgressBar('demo', this.interactive)
    const settings = DEMO_SIZES[flags.size]
    try {
      const report = await runDemo({
        out: flags.out,
        force: flags.force,
        seed: flags.seed,
        settings,
        onProgress: bar.onProgress,
        onNote: (line) => {
          bar.stop()
          this.warnUser(line)
        },
        observer: {
          start: (info) => human && this.log(renderDemoStart(info)),
          begin: (step) => human && this.log(explainStep(step, settings)),
          end: (step, stepReport) => {
            bar.stop()
            if (human) this.log(renderStep(step, stepReport))
          },
        },
      })
      if (human) this.log(renderDemoSummary(report))
      return report
    } finally {
      bar.stop()
    }
  }
}
