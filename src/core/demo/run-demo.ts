/**
 * `lora demo`: the whole toolchain on synthetic data, no downloads. Five
 * steps, each one a call into the library the commands use — synthesize a
 * base and adapters, pack them, compress them with shared B, merge one and
 * quantize it, benchmark serving — then a summary computed from the steps'
 * reports. An observer hears each step begin and end (the command explains
 * and renders as it goes).
 */
import {readdirSync, statSync} from 'node:fs'
import {tmpdir} from 'node:os'
import {join} from 'node:path'
import {performance} from 'node:perf_hooks'
import {UsageError} from '../errors.js'
import {MODEL_OUTPUT_KIND, SYNTH_ADAPTERS_OUTPUT_KIND, checkOutputs} from '../io/output-target.js'
import {removeStaleTemporaries} from '../io/temporaries.js'
import {QUANT_SCHEMES} from '../quant/schemes.js'
import type {ProgressCallback} from '../progress.js'
import {DEMO_SIZES, DemoSettings} from './settings.js'
import {BenchStep, benchStep} from './step-bench.js'
import {CompressStep, compressStep} from './step-compress.js'
import {MergeStep, mergeStep, mergedEntryName} from './step-merge.js'
import {PackStep, packStep} from './step-pack.js'
import {SynthStep, synthStep} from './step-synth.js'
import {benchTakeaway, compressTakeaway, mergeTakeaway, packTakeaway, synthTakeaway} from './takeaways.js'
import {DemoWorkspace} from './workspace.js'

export interface DemoSteps {
  synth: SynthStep
  pack: PackStep
  compress: CompressStep
  merge: MergeStep
  bench: BenchStep
}

export type DemoStepName = keyof DemoSteps
export const DEMO_STEPS: readonly DemoStepName[] = ['synth', 'pack', 'compress', 'merge', 'bench']

export interface DemoFile {
  /** Entry of the demo folder. */
  name: string
  path: string
  /** Bytes on disk (a folder: all its files). */
  bytes: number
  what: string
}

export interface DemoReport {
  /** The folder the artifacts were written to. */
  out: string
  /** Whether it was kept (`--out`) or removed at the end (a temporary folder). */
  kept: boolean
  seed: number
  settings: DemoSettings
  steps: DemoSteps
  summary: {files: DemoFile[]; takeaways: Record<DemoStepName, string>}
  seconds: number
}

/** What an observer learns as the demo runs. */
export interface DemoObserver {
  start?(info: {out: string; kept: boolean; settings: DemoSettings; seed: number}): void
  begin?(step: DemoStepName): void
  end?<S extends DemoStepName>(step: S, report: DemoSteps[S]): void
}

export interface DemoOptions {
  /** Keep the artifacts in this folder (refused when non-empty, unless `force`); a temporary folder otherwise. */
  out?: string
  force?: boolean
  seed?: number
  /** Default: `DEMO_SIZES.full`. */
  settings?: DemoSettings
  observer?: DemoObserver
  /** Progress of the running step; stages are prefixed with the step's name. */
  onProgress?: ProgressCallback
  /** Warnings and notes from the steps. */
  onNote?: (line: string) => void
}

/**
 * Run the demo.
 * @throws UsageError for a non-empty `out` without `force`, or settings the steps cannot take;
 *   GateError when a bench strategy disagrees with the float64 reference. Nothing is left behind on failure.
 */
export async function runDemo(options: DemoOptions = {}): Promise<DemoReport> {
  const started = performance.now()
  const settings = options.settings ?? DEMO_SIZES.full
  validate(settings)
  const seed = options.seed ?? 0
  const force = options.force ?? false
  if (options.out !== undefined && force) await checkDemoEntries(options.out, settings)
  if (options.out === undefined) await removeStaleTemporaries(tmpdir())
  const ws = DemoWorkspace.open({out: options.out, force})
  const observer = options.observer ?? {}
  const progress = (step: DemoStepName): ProgressCallback | undefined => {
    const on = options.onProgress
    return on ? (p) => on({...p, stage: `${step}: ${p.stage}`}) : undefined
  }
  const run = async <S extends DemoStepName>(step: S, fn: (onProgress?: ProgressCallback) => Promise<DemoSteps[S]>): Promise<DemoSteps[S]> => {
    observer.begin?.(step)
    const report = await fn(progress(step))
    observer.end?.(step, report)
    return report
  }
  try {
    observer.start?.({out: ws.dir, kept: ws.kept, settings, seed})
    const synth = await run('synth', (p) => synthStep(ws, settings, seed, force, p))
    const pack = await run('pack', (p) => packStep(ws, synth.adapters.out, force, p))
    const compress = await run('compress', (p) => compressStep(ws, pack.result.out, settings.maxError, force, p))
    const merge = await run('merge', (p) => mergeStep(ws, synth.base.out, synth.adapters, {schemes: settings.schemes, probeRows: settings.probeRows, seed, force, onProgress: p, onWarning: options.onNote}))
    const bench = await run('bench', (p) => benchStep(ws, synth.base.out, settings, compress.choice.K, {seed, force, onProgress: p, onNote: options.onNote}))
    const steps: DemoSteps = {synth, pack, compress, merge, bench}
    const report: DemoReport = {
      out: ws.dir,
      kept: ws.kept,
      seed,
      settings,
      steps,
      summary: {
        files: describeFiles(ws, steps),
        takeaways: {synth: synthTakeaway(synth), pack: packTakeaway(pack), compress: compressTakeaway(compress), merge: mergeTakeaway(merge), bench: benchTakeaway(bench)},
      },
      seconds: (performance.now() - started) / 1000,
    }
    ws.finish()
    return report
  } catch (error) {
    ws.discard()
    throw error
  }
}

function validate(s: DemoSettings): void {
  if (!Number.isSafeInteger(s.adapters) || s.adapters < 1) throw new UsageError('BAD_FLAG', `demo: adapters must be a positive integer (got ${s.adapters})`)
  if (s.bench.counts.length === 0) throw new UsageError('BAD_FLAG', 'demo: the bench needs at least one adapter count')
  if (!(s.maxError > 0 && s.maxError < 1)) throw new UsageError('BAD_FLAG', `demo: the K rule's error bound must be in (0, 1) (got ${s.maxError})`)
  if (s.schemes.length === 0) throw new UsageError('BAD_FLAG', 'demo: at least one quantization scheme is needed')
}

/**
 * With `--force` into an existing folder: every entry the demo will write may be replaced
 * (`output-target.ts`: a file by a file, a folder only when it is a previous output of the
 * same kind), checked before the first step instead of failing in the middle of the run.
 */
async function checkDemoEntries(out: string, s: DemoSettings): Promise<void> {
  const file = (name: string) => ({path: join(out, name), kind: 'file' as const, flag: `--out entry ${name}`})
  const folder = (name: string, kind: string) => ({path: join(out, name), kind: 'folder' as const, folderKind: kind, flag: `--out entry ${name}`})
  await checkOutputs(
    [
      folder('base', MODEL_OUTPUT_KIND),
      folder('adapters', SYNTH_ADAPTERS_OUTPUT_KIND),
      file('pack.safetensors'),
      file('shared-b.safetensors'),
      ...s.schemes.map((scheme) => (QUANT_SCHEMES[scheme].format === 'gguf' ? file(mergedEntryName(scheme)) : folder(mergedEntryName(scheme), MODEL_OUTPUT_KIND))),
      file('bench.json'),
      file('bench.svg'),
    ],
    {force: true},
  )
}

/** The entries of the demo folder with their sizes, measured on disk. */
function describeFiles(ws: DemoWorkspace, s: DemoSteps): DemoFile[] {
  const what: Record<string, string> = {
    base: `synthetic Llama-style base (${s.synth.base.files.join(', ')})`,
    adapters: `${s.synth.adapters.count} PEFT adapter folders`,
    'pack.safetensors': `lora-pack: all ${s.pack.result.adapters} adapters stacked, ${s.pack.result.slots} slots`,
    'shared-b.safetensors': `lora-pack-shared-b at K = ${s.compress.choice.K}`,
    'bench.json': 'serving benchmark report',
    'bench.svg': 'throughput vs adapters, one line per strategy',
  }
  for (const run of s.merge.runs) what[mergedEntryName(run.scheme)] = `base + ${s.merge.adapter.name} merged, ${run.scheme} (${run.result.format})`
  return ws.entries.map((name) => ({name, path: ws.path(name), bytes: diskBytes(ws.path(name)), what: what[name] ?? name}))
}

function diskBytes(path: string): number {
  const st = statSync(path)
  if (!st.isDirectory()) return st.size
  return readdirSync(path).reduce((sum, name) => sum + diskBytes(join(path, name)), 0)
}
