/** Writing a bench report (`--out`) and its plot (`--plot`): checked free first, written atomically. */
import {describeSystemError} from '../errors.js'
import {AtomicFile} from '../io/atomic-output.js'
import {checkOutputs} from '../io/output-target.js'
import {writeFully} from '../io/positional.js'
import {renderThroughputSvg} from './plot.js'
import type {BenchReport} from './report.js'

export interface BenchOutputPaths {
  out?: string
  plot?: string
  force?: boolean
  /** The files the run reads (base, pack, shared-B file, baseline): no output may be one of them. */
  inputs?: ReadonlyArray<string | undefined>
}

/**
 * Refuse early (before minutes of measuring) an output that exists without `force`, is an input, or cannot be written (`output-target.ts`).
 * @throws UsageError OUTPUT_EXISTS and the other refusals of `checkOutputs`
 */
export async function checkOutputsFree(paths: BenchOutputPaths): Promise<void> {
  const targets = [
    ...(paths.out ? [{path: paths.out, kind: 'file' as const, flag: '--out'}] : []),
    ...(paths.plot ? [{path: paths.plot, kind: 'file' as const, flag: '--plot'}] : []),
  ]
  await checkOutputs(targets, {force: paths.force, inputs: paths.inputs})
}

/** Write the JSON report and the SVG plot where asked. */
export async function writeBenchOutputs(report: BenchReport, paths: BenchOutputPaths): Promise<void> {
  if (paths.out) await writeText(paths.out, `${JSON.stringify(report, null, 2)}\n`, paths.force)
  if (paths.plot) await writeText(paths.plot, renderThroughputSvg(report.results, plotTitle(report)), paths.force)
}

/** `llama 2048/5632×2 rank 16, batch 32, distinct (cpu)`. */
export function plotTitle(report: BenchReport): string {
  const c = report.config
  const model = c.model === 'llama' ? `llama ${c.hidden}/${c.intermediate}×${c.layers}` : `layer ${c.hidden}×${c.hidden}`
  return `${model}, rank ${c.rank}, batch ${c.batch}${c.tokens_per_request > 1 ? `×${c.tokens_per_request}` : ''}, ${c.workload} (${c.ep}): throughput vs adapters`
}

/** Write `text` to `path` atomically (a temporary name renamed on success). */
export async function writeText(path: string, text: string, force?: boolean): Promise<void> {
  const file = await AtomicFile.create(path, {force})
  try {
    await writeFully(file.handle, new TextEncoder().encode(text), 0)
    await file.commit()
  } catch (error) {
    await file.abort()
    throw describeSystemError(error, 'write', path)
  }
}
