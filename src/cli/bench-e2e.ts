/**
 * `lora bench --e2e`: the flags only the end-to-end benchmark takes, and
 * the run (flags → one options object → `runE2e` → outputs → table), kept
 * beside the bench command so that it stays thin.
 */
import {Flags} from '@oclif/core'
import {MAX_HEADS, MAX_REPEATS, MAX_ROWS, MAX_VOCAB, integer, number, path, size} from './flags.js'
import {renderE2eTable} from './e2e-table.js'
import type {Projection} from '../core/models/llama.js'
import {createProgressBar} from './progress-bar.js'
import {BASE_DTYPES} from '../core/e2e/base-dtype.js'
import {checkE2eOutputsFree, writeE2eOutputs} from '../core/e2e/e2e-outputs.js'
import {E2eReport, assertTokensEqual} from '../core/e2e/e2e-report.js'
import {E2E_DEFAULT_TARGETS, runE2e} from '../core/e2e/run-e2e.js'
import {E2E_STRATEGIES, isE2eStrategy} from '../core/e2e/strategies.js'
import {parseWorkload} from '../core/bench/workload.js'
import {UsageError} from '../core/errors.js'
import type {ExecutionProviderChoice} from '../core/onnx/session.js'

const e2e = ['e2e']

/** Flags of `lora bench --e2e` that the linear bench does not take. */
export const E2E_FLAGS = {
  e2e: Flags.boolean({description: 'end-to-end serving: a whole decoder with KV cache, prefill and decode, continuous batching, per-request adapters (docs/bench.md)'}),
  vocab: integer({min: 1, max: MAX_VOCAB})({description: '--e2e synthetic model: vocabulary size (default 32000)', dependsOn: e2e}),
  heads: integer({min: 1, max: MAX_HEADS})({description: '--e2e synthetic model: attention heads (default hidden / 64)', dependsOn: e2e}),
  'kv-heads': integer({min: 1, max: MAX_HEADS})({description: '--e2e synthetic model: key/value heads (default: as many as heads)', dependsOn: e2e}),
  requests: integer({min: 1, max: MAX_REPEATS})({description: '--e2e: requests R (default 32)', dependsOn: e2e}),
  'prompt-tokens': integer({min: 1, max: MAX_ROWS})({description: '--e2e: prompt tokens P per request (default 128)', dependsOn: e2e}),
  'gen-tokens': integer({min: 1, max: MAX_ROWS})({description: '--e2e: generated tokens G per request, greedy, end of sequence does not stop them (default 128)', dependsOn: e2e}),
  rate: number({above: 0})({description: '--e2e: Poisson arrivals at this many requests per second (default: all at once, offline)', dependsOn: e2e}),
  'max-batch': integer({min: 1, max: MAX_ROWS})({description: '--e2e: requests in the running batch at most (default 32)', dependsOn: e2e}),
  'kv-budget': size()({description: '--e2e: KV-cache bytes the running batch may reserve (prompt + max tokens per request), e.g. 2GiB (default: no limit)', dependsOn: e2e}),
  'base-dtype': Flags.option({description: '--e2e: base weights f32 (default), f16 (rounded; computed in f32) or q4 (Q4_0 through MatMulNBits), adapters unmerged in f32', options: BASE_DTYPES, dependsOn: e2e})(),
  'engine-dir': path()({description: '--e2e --strategies llama.cpp: a folder whose node_modules holds node-llama-cpp (default: where lora is installed, then the current folder)', dependsOn: e2e}),
}

/** Flags of the linear bench that `--e2e` refuses. */
const LINEAR_ONLY = ['batch', 'prefill', 'ranks', 'tolerance', 'rounds', 'steps', 'base', 'work-dir', 'baseline', 'max-regression', 'stack-dtype']

/** The parsed flags `runE2eCommand` reads (the bench command's, with `E2E_FLAGS`). */
export interface E2eCommandFlags {
  model: string
  hidden?: number
  intermediate?: number
  layers?: number
  vocab?: number
  heads?: number
  'kv-heads'?: number
  targets?: Projection[]
  adapters?: number[]
  rank?: number
  'shared-k'?: number
  pack?: string
  'shared-b'?: string
  requests?: number
  'prompt-tokens'?: number
  'gen-tokens'?: number
  workload: string
  'base-fraction': number
  rate?: number
  'max-batch'?: number
  'kv-budget'?: number
  'base-dtype'?: (typeof BASE_DTYPES)[number]
  'engine-dir'?: string
  strategies?: string[]
  ep: ExecutionProviderChoice
  threads: number
  'merged-cache': number
  seed: number
  out?: string
  plot?: string
  force: boolean
}

/** What the command lends the run. */
export interface E2eCommandIo {
  /** The raw arguments (to refuse flags of the linear bench). */
  argv: readonly string[]
  json: boolean
  log(text: string): void
  warn(line: string): void
}

/**
 * Run `lora bench --e2e`: write the outputs, print the table, then fail
 * (exit 1) when a strategy's tokens differ from the reference.
 * @throws UsageError for contradicting flags; GateError TOKENS_DIFFER
 */
export async function runE2eCommand(flags: E2eCommandFlags, io: E2eCommandIo): Promise<E2eReport> {
  const linear = LINEAR_ONLY.find((f) => io.argv.some((a) => a === `--${f}` || a.startsWith(`--${f}=`)))
  if (linear) throw new UsageError('BAD_FLAG', `--${linear} is a flag of the linear bench; --e2e does not take it (see lora bench --help)`)
  if (flags.model === 'layer') throw new UsageError('BAD_FLAG', '--model layer is the linear bench; with --e2e, --model names a model folder or .gguf file (or leave it out for a synthetic Llama)')
  const modelPath = flags.model === 'llama' ? undefined : flags.model
  const dimFlags = (['hidden', 'intermediate', 'layers', 'vocab', 'heads', 'kv-heads'] as const).filter((f) => flags[f] !== undefined)
  if (modelPath && dimFlags.length > 0) throw new UsageError('BAD_FLAG', `--${dimFlags[0]} describes a synthetic model; --model ${modelPath} has its own dims`)
  if (flags.pack && (flags.adapters !== undefined || flags.rank !== undefined || flags.targets !== undefined)) throw new UsageError('BAD_FLAG', `--adapters, --rank and --targets describe synthetic adapters; --pack ${flags.pack} has its own`)
  const strategies = flags.strategies
  for (const s of strategies ?? []) if (!isE2eStrategy(s)) throw new UsageError('BAD_FLAG', `--strategies: unknown strategy "${s}" (expected ${E2E_STRATEGIES.join(', ')})`)
  const baseFraction = flags['base-fraction']
  const rate = flags.rate
  const trace = flags.workload.toLowerCase().endsWith('.jsonl') ? flags.workload : undefined
  await checkE2eOutputsFree({out: flags.out, plot: flags.plot, force: flags.force, inputs: [modelPath, flags.pack, flags['shared-b'], trace]})
  const bar = createProgressBar('bench --e2e')
  try {
    const report = await runE2e({
      model: modelPath,
      dims: {hidden: flags.hidden ?? 512, intermediate: flags.intermediate ?? 1376, layers: flags.layers ?? 4, vocab: flags.vocab ?? 32000, heads: flags.heads, kvHeads: flags['kv-heads']},
      baseDtype: flags['base-dtype'] ?? 'f32',
      pack: flags.pack,
      sharedB: flags['shared-b'],
      adapters: flags.adapters ?? [100],
      rank: flags.rank ?? 16,
      targets: flags.targets ?? E2E_DEFAULT_TARGETS,
      sharedK: flags['shared-k'] ?? 16,
      requests: flags.requests ?? 32,
      promptTokens: flags['prompt-tokens'] ?? 128,
      genTokens: flags['gen-tokens'] ?? 128,
      workload: trace ? {kind: 'trace', path: trace} : parseWorkload(flags.workload),
      baseFraction,
      arrival: rate === undefined ? {kind: 'offline'} : {kind: 'poisson', rate},
      maxBatch: flags['max-batch'] ?? 32,
      kvBudgetBytes: flags['kv-budget'],
      strategies,
      ep: flags.ep,
      threads: flags.threads,
      mergedCache: flags['merged-cache'],
      engineDir: flags['engine-dir'],
      seed: flags.seed,
      onProgress: bar.onProgress,
      onNote: io.warn,
    })
    bar.stop()
    await writeE2eOutputs(report, {out: flags.out, plot: flags.plot, force: flags.force})
    if (!io.json) io.log(renderE2eTable(report))
    assertTokensEqual(report)
    return report
  } finally {
    bar.stop()
  }
}
