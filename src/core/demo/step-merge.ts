/**
 * Demo step 4: one adapter merged into the base and quantized with each
 * scheme; the quality reports compare (a) merge then quantize, (b) a
 * quantized base serving the adapter unmerged, (c) re-quantizing a quantized
 * base, measured on the files as written.
 */
import {performance} from 'node:perf_hooks'
import {MergeResult, mergeModel} from '../merge/merge-model.js'
import type {ProgressCallback} from '../progress.js'
import {QUANT_SCHEMES, QuantSchemeName} from '../quant/schemes.js'
import type {SynthAdaptersResult} from '../synth/adapters.js'
import type {DemoWorkspace} from './workspace.js'

export interface MergeStep {
  /** The merged adapter: the first one of the largest rank. */
  adapter: {name: string; path: string; r: number}
  runs: Array<{scheme: QuantSchemeName; result: MergeResult}>
  seconds: number
}

/** Output entry of a scheme: a folder for safetensors schemes, a `.gguf` file for GGUF ones. */
export function mergedEntryName(scheme: QuantSchemeName): string {
  return QUANT_SCHEMES[scheme].format === 'gguf' ? `merged-${scheme}.gguf` : `merged-${scheme}`
}

export async function mergeStep(
  ws: DemoWorkspace,
  basePath: string,
  adapters: SynthAdaptersResult,
  options: {schemes: readonly QuantSchemeName[]; probeRows: number; seed: number; force: boolean; onProgress?: ProgressCallback; onWarning?: (line: string) => void},
): Promise<MergeStep> {
  const started = performance.now()
  const top = Math.max(...adapters.adapters.map((a) => a.r))
  const chosen = adapters.adapters.find((a) => a.r === top)!
  const runs: MergeStep['runs'] = []
  for (const scheme of options.schemes) {
    const name = mergedEntryName(scheme)
    const result = await mergeModel({
      base: basePath,
      adapters: [{path: chosen.path}],
      out: ws.path(name),
      quantize: scheme,
      quality: {rows: options.probeRows, seed: options.seed},
      force: options.force,
      onProgress: options.onProgress,
      onWarning: options.onWarning,
    })
    ws.wrote(name)
    runs.push({scheme, result})
  }
  return {adapter: {name: chosen.name, path: chosen.path, r: chosen.r}, runs, seconds: (performance.now() - started) / 1000}
}
