/**
 * Wires a core `onProgress` callback to a cli-progress bar on stderr, drawn
 * only when stderr is a terminal: pipes and CI logs stay clean.
 */
import cliProgress from 'cli-progress'
import type {Progress, ProgressCallback} from '../core/progress.js'

export interface ProgressBar {
  /** Pass to the core function; undefined when nothing is drawn. */
  readonly onProgress: ProgressCallback | undefined
  /** Remove the bar (call in `finally`). */
  stop(): void
}

export function createProgressBar(label: string, enabled = Boolean(process.stderr.isTTY)): ProgressBar {
  if (!enabled) return {onProgress: undefined, stop() {}}
  let bar: cliProgress.SingleBar | undefined
  let stage = ''
  const stop = () => {
    bar?.stop()
    bar = undefined
  }
  const onProgress = (p: Progress) => {
    if (!bar || p.stage !== stage) {
      stop()
      stage = p.stage
      bar = new cliProgress.SingleBar(
        {
          stream: process.stderr,
          format: `${label} ${p.stage} [{bar}] {value}/{total} {percentage}% | {eta_formatted} left`,
          hideCursor: true,
          clearOnComplete: true,
          etaBuffer: 50,
        },
        cliProgress.Presets.shades_classic,
      )
      bar.start(p.total, p.done)
    }
    bar.setTotal(p.total)
    bar.update(p.done)
  }
  return {onProgress, stop}
}
