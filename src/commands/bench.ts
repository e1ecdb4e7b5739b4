import {Flags} from '@oclif/core'
import {LoraCommand} from '../cli/base-command.js'
import {E2E_FLAGS, runE2eCommand} from '../cli/bench-e2e.js'
import {MAX_ADAPTERS, MAX_LAYERS, MAX_MODEL_DIM, MAX_RANK, MAX_REPEATS, MAX_ROWS, MAX_THREADS, integer, integerList, number, path, seedFlag} from '../cli/flags.js'
import type {E2eReport} from '../core/e2e/e2e-report.js'
import {renderBenchTable} from '../cli/bench-table.js'
import {targets} from '../cli/llama-flags.js'
import {createProgressBar} from '../cli/progress-bar.js'
import {writeBenchOutputs, checkOutputsFree} from '../core/bench/outputs.js'
import {BenchReport, assertComparable, compareWithBaseline, describeRegressions, readReport} from '../core/bench/report.js'
import {assertTolerance, runBench} from '../core/bench/run-bench.js'
import {BENCH_DEFAULTS} from '../core/bench/bench-serving.js'
import {parseWorkload, workloadName} from '../core/bench/workload.js'
import {resolveModelShape} from '../core/bench/base-dims.js'
import {GateError, UsageError} from '../core/errors.js'
import {STRATEGIES, Strategy, describeStrategies, isStrategy} from '../core/serve/registry.js'

export default class Bench extends LoraCommand {
  static override summary = 'Measure multi-adapter batch serving on onnxruntime: routed LoRA strategies against the base model.'
  static override description =
    `Builds the model (one linear layer, or the linear work of L Llama blocks) as ONNX graphs with 1 to thousands of stacked adapters, serves batches whose requests each want an adapter, and times ${describeStrategies()} interleaved. Every strategy is checked against a float64 reference. Weights are synthetic unless --base/--pack give real ones; with --pack, shared-b serves the pack compressed in memory at --shared-k, or the lora compress output named by --shared-b. With --e2e it serves requests end to end instead: a whole decoder with KV cache, continuous batching, per-request adapters, every strategy's tokens checked against the reference, TTFT and inter-token latency percentiles (docs/bench.md).`
  static override examples = [
    {command: '<%= config.bin %> bench', description: 'Default run: a small llama stack, 100 adapters, batch 32, every strategy.'},
    {command: '<%= config.bin %> bench --hidden 2048 --intermediate 5632 --layers 2 --adapters 1000 --strategies base,gather,shared-b', description: 'The first target row.'},
    {command: '<%= config.bin %> bench --model layer --hidden 1024 --adapters 1,4,16,64,256,1000 --strategies base,gather,mask --plot sweep.svg', description: 'Where mask stops paying off.'},
    {command: '<%= config.bin %> bench --base ./base --pack pack.safetensors --shared-b pack-k16.safetensors', description: 'Real weights: the pack for the routed stacks, its lora compress output for shared-b.'},
    {command: '<%= config.bin %> bench --hidden 2048 --intermediate 5632 --layers 2 --adapters 1000 --targets all --strategies base,gather,shared-b --stack-dtype f16', description: 'Adapter stacks stored in f16 (half the bytes gathered per step), products in f32.'},
    {command: '<%= config.bin %> bench --out new.json --baseline old.json --max-regression 0.10', description: 'CI: exit 1 when a strategy\'s ratio to base fell by more than 10%.'},
    {command: '<%= config.bin %> bench --e2e --hidden 2048 --intermediate 5632 --layers 4 --adapters 1000 --requests 32', description: 'End to end: a whole decoder with KV cache serving 32 requests (128 + 128 tokens) with continuous batching, every strategy checked token by token against the reference.'},
    {command: '<%= config.bin %> bench --e2e --model ./model --pack pack.safetensors --rate 2 --plot e2e.svg', description: 'A real model and pack, Poisson arrivals at 2 requests/s: TTFT and ITL percentiles, throughput and latency-CDF plots.'},
  ]
  static override flags = {
    model: path()({description: 'model under test: llama or layer; with --e2e a model folder or .gguf file (a synthetic Llama when absent)', default: 'llama'}),
    hidden: integer({min: 1, max: MAX_MODEL_DIM})({description: 'hidden size (default 512, or the base\'s)'}),
    intermediate: integer({min: 1, max: MAX_MODEL_DIM})({description: 'MLP intermediate size (default 1376, or the base\'s)'}),
    layers: integer({min: 1, max: MAX_LAYERS})({description: 'decoder blocks (default 4)'}),
    targets: targets()({description: 'adapted projections (q,k,v,o; all; attn; mlp); default q,k,v,o, or the pack\'s'}),
    adapters: integerList({min: 1, max: MAX_ADAPTERS})({description: 'adapter count, or a list to sweep (1,10,100,1000); default 100, or the pack\'s'}),
    rank: integer({min: 1, max: MAX_RANK})({description: 'LoRA rank', exclusive: ['ranks']}),
    ranks: integerList({min: 1, max: MAX_RANK})({description: 'mixed ranks assigned in turn, padded to the largest (8,16,64)', exclusive: ['rank']}),
    batch: integer({min: 1, max: MAX_ROWS})({description: 'requests per step', default: BENCH_DEFAULTS.batch}),
    prefill: integer({min: 1, max: MAX_ROWS})({description: 'tokens per request (prefill); decode (1 token) when absent'}),
    workload: Flags.custom<string>({helpValue: '<workload>', parse: async (input) => (/\.jsonl$/i.test(input) ? input : workloadName(parseWorkload(input)))})({description: 'distinct, uniform, identical or zipf:ALPHA (--e2e: or a .jsonl trace)', default: 'distinct'}),
    'base-fraction': number({min: 0, max: 1})({description: 'share of requests with no adapter, 0..1', default: BENCH_DEFAULTS.baseFraction}),
    seed: seedFlag('random seed (weights, inputs, workload)'),
    strategies: Flags.custom<string[]>({helpValue: '<strategies>', parse: async (input) => strategyList(input)})({description: `comma-separated subset of ${STRATEGIES.join(',')} (default: all that fit in memory); with --e2e also llama.cpp, the peer, run only when named`}),
    ep: Flags.option({description: 'execution provider; auto = cuda > webgpu > cpu, whichever initializes', options: ['cpu', 'webgpu', 'cuda', 'auto'] as const, default: BENCH_DEFAULTS.ep})(),
    threads: integer({min: 1, max: MAX_THREADS})({description: 'intra-op threads', default: BENCH_DEFAULTS.threads}),
    'merged-cache': integer({min: 1, max: MAX_REPEATS})({description: 'merged copies held by the merged strategy (LRU)', default: BENCH_DEFAULTS.mergedCache}),
    'shared-k': integer({min: 1, max: MAX_RANK})({description: 'shared basis size K of the shared-b strategy (synthetic, or the --pack compressed in memory); default 16'}),
    'stack-dtype': Flags.option({description: 'storage of the adapter stacks and shared-b\'s A\' (f16: gathered in f16 and cast to f32 right after; base, shared B and products stay f32)', options: ['f32', 'f16'] as const, default: BENCH_DEFAULTS.stackDtype})(),
    tolerance: number({above: 0, max: 1})({description: 'largest max_abs_error / max |y_ref| allowed (exit 1 above it), in (0, 1]', default: BENCH_DEFAULTS.tolerance}),
    rounds: integer({min: 1, max: MAX_REPEATS})({description: 'interleaved rounds', default: BENCH_DEFAULTS.rounds}),
    steps: integer({min: 1, max: MAX_REPEATS})({description: 'timed steps per strategy per round', default: BENCH_DEFAULTS.stepsPerRound}),
    base: path()({description: 'real base model (file, index or folder; synth base layout)'}),
    pack: path()({description: 'real lora pack file for the adapter stacks'}),
    'shared-b': path()({description: 'lora compress output (lora-pack-shared-b) of --pack: shared-b serves its A\' and shared B, K from the file'}),
    'work-dir': path()({description: 'keep weights and models here and reuse them (default: a temporary folder)'}),
    out: path()({description: 'write the JSON report here'}),
    plot: path()({description: 'write an SVG of throughput vs adapters here'}),
    baseline: path()({description: 'an earlier report: exit 1 when relative_to_base fell by more than --max-regression'}),
    'max-regression': number({min: 0, below: 1})({description: 'allowed fall of relative_to_base against --baseline (0.10 = 10%), in [0, 1)', default: 0.1}),
    force: Flags.boolean({description: 'overwrite --out / --plot'}),
    ...E2E_FLAGS,
  }

  async run(): Promise<BenchReport | E2eReport> {
    const {flags} = await this.parse(Bench)
    if (flags.e2e) return runE2eCommand(flags, {argv: this.argv, json: this.jsonEnabled(), log: (text) => this.log(text), warn: (line) => this.warnUser(line)})
    if (flags.model !== 'llama' && flags.model !== 'layer') throw new UsageError('BAD_FLAG', `--model must be llama or layer (got "${flags.model}"; a model path needs --e2e)`)
    if (/\.jsonl$/i.test(flags.workload)) throw new UsageError('BAD_FLAG', `--workload ${flags.workload}: a trace is for --e2e; the linear bench takes distinct, uniform, identical or zipf:ALPHA`)
    const tolerance = flags.tolerance
    const maxRegression = flags['max-regression']
    const baseFraction = flags['base-fraction']
    const strategies = flags.strategies ? parseStrategies(flags.strategies) : undefined
    if (flags['shared-b'] && flags['shared-k'] !== undefined) throw new UsageError('BAD_FLAG', `--shared-k does not apply with --shared-b ${flags['shared-b']}: K comes from the file`)
    const baseline = flags.baseline ? readReport(flags.baseline) : undefined
    await checkOutputsFree({out: flags.out, plot: flags.plot, force: flags.force, inputs: [flags.base, flags.pack, flags['shared-b'], flags.baseline]})
    const shape = await resolveModelShape({
      hidden: flags.hidden,
      intermediate: flags.intermediate,
      layers: flags.layers,
      targets: flags.targets,
      adapters: flags.adapters,
      basePath: flags.base,
      packPath: flags.pack,
    })
    const ranks = flags.ranks ?? (flags.rank ? [flags.rank] : [...BENCH_DEFAULTS.ranks])
    // a baseline of another configuration is refused before minutes of measuring (and again on the full config after)
    if (baseline) {
      assertComparable(
        {
          model: flags.model,
          hidden: shape.hidden,
          intermediate: shape.intermediate,
          layers: flags.model === 'layer' ? 1 : shape.layers,
          targets: flags.model === 'layer' ? ['hidden×hidden linear'] : shape.targets,
          batch: flags.batch,
          tokens_per_request: flags.prefill ?? BENCH_DEFAULTS.tokens,
          workload: flags.workload,
          base_fraction: baseFraction,
          threads: flags.threads,
          stack_dtype: flags['stack-dtype'],
          merged_cache: flags['merged-cache'],
          ...(flags.pack ? {} : {ranks, rank: Math.max(...ranks)}),
          ...(flags.ep === 'auto' ? {} : {ep: flags.ep}),
        },
        baseline.config,
        flags.baseline!,
      )
    }
    const bar = createProgressBar('bench')
    try {
      const outcome = await runBench({
        model: flags.model as 'llama' | 'layer',
        ...shape,
        ranks,
        batch: flags.batch,
        tokens: flags.prefill ?? BENCH_DEFAULTS.tokens,
        workload: parseWorkload(flags.workload),
        baseFraction,
        seed: flags.seed,
        strategies,
        ep: flags.ep,
        threads: flags.threads,
        mergedCache: flags['merged-cache'],
        sharedK: flags['shared-k'] ?? BENCH_DEFAULTS.sharedK,
        tolerance,
        rounds: flags.rounds,
        stepsPerRound: flags.steps,
        workDir: flags['work-dir'],
        basePath: flags.base,
        packPath: flags.pack,
        sharedBPath: flags['shared-b'],
        stackDtype: flags['stack-dtype'],
        onProgress: bar.onProgress,
        onNote: (line) => this.warnUser(line),
      })
      bar.stop()
      await writeBenchOutputs(outcome.report, {out: flags.out, plot: flags.plot, force: flags.force})
      if (!this.jsonEnabled()) this.log(renderBenchTable(outcome.report))
      assertTolerance(outcome.toleranceFailures, tolerance)
      if (baseline) {
        assertComparable(outcome.report.config, baseline.config, flags.baseline!)
        const failures = compareWithBaseline(outcome.report, baseline, maxRegression)
        if (failures.length > 0) throw new GateError('REGRESSION', `regression against ${flags.baseline}: ${describeRegressions(failures, maxRegression)}`)
      }
      return outcome.report
    } finally {
      bar.stop()
    }
  }
}

/** `--strategies` as a list of names (the linear bench and --e2e each check them against their own table). */
function strategyList(text: string): string[] {
  const names = [...new Set(text.split(',').map((t) => t.trim()).filter(Boolean))]
  if (names.length === 0) throw new UsageError('BAD_FLAG', '--strategies needs at least one strategy')
  return names
}

function parseStrategies(names: readonly string[]): Strategy[] {
  const out: Strategy[] = []
  for (const s of names) {
    if (!isStrategy(s)) throw new UsageError('BAD_FLAG', `--strategies: unknown strategy "${s}" (expected ${STRATEGIES.join(', ')})`)
    if (!out.includes(s)) out.push(s)
  }
  if (out.length === 0) throw new UsageError('BAD_FLAG', '--strategies needs at least one strategy')
  return out
}

