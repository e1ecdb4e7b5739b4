/** Demo step 2: every adapter stacked into one routed `lora-pack` file, and where its bytes go. */
import {performance} from 'node:perf_hooks'
import {SafetensorsFile} from '../formats/safetensors-file.js'
import {PackBytes, summarizePack} from '../pack/inspect-pack.js'
import {PackResult, packAdapters} from '../pack/pack-adapters.js'
import type {ProgressCallback} from '../progress.js'
import type {DemoWorkspace} from './workspace.js'

export interface PackStep {
  result: PackResult
  /** Read back from the written file's header: file size, stacks, padding by cause. */
  bytes: PackBytes
  /** Largest padded rank R over the modules, and the adapters' distinct ranks. */
  R: number
  ranks: number[]
  seconds: number
}

export async function packStep(ws: DemoWorkspace, adaptersDir: string, force: boolean, onProgress?: ProgressCallback): Promise<PackStep> {
  const started = performance.now()
  const result = await packAdapters({inputs: [adaptersDir], out: ws.path('pack.safetensors'), force, onProgress})
  ws.wrote('pack.safetensors')
  const file = await SafetensorsFile.open(result.out)
  try {
    const summary = summarizePack(file)
    return {
      result,
      bytes: summary.bytes,
      R: Math.max(...summary.modules.map((m) => m.R)),
      ranks: [...new Set(summary.manifest.adapters.map((a) => a.r))].sort((a, b) => a - b),
      seconds: (performance.now() - started) / 1000,
    }
  } finally {
    await file.close()
  }
}
