/** Writing a bench report (`--out`) and its plot (`--plot`): checked free first, written atomically. */
import {AtomicFile, assertOutputFree} from '../io/atomic-output.js'
import {writeFully} from '../io/positional.js'
import {renderThroughputSvg} from './plot.js'
import type {BenchReport} from './report.js'

export interface BenchOutputPaths {
  out?: string
  plot?: string
  force?: boolean
}

/**
 * Refuse early (before minutes of measuring) when an output exists and not `force`.
 * @throws UsageError OUTPUT_EXISTS
 */
export async function checkOutputsFree(paths: BenchOutputPaths): Promise<void> {
  for (const p of [paths.out, paths.plot]) if (p) await assertOutputFree(p, paths.force)
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
    throw error
  }
}
