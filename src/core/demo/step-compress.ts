/** Demo step 3: the savings/error sweep over K, the K the rule picks, and the `lora-pack-shared-b` file at that K. */
import {statSync} from 'node:fs'
import {performance} from 'node:perf_hooks'
import {CompressReport, SweepReport, compressFile, sweepFile} from '../compress/compress-file.js'
import type {ProgressCallback} from '../progress.js'
import {SharedRankChoice, chooseSharedRank} from './choose-rank.js'
import type {DemoWorkspace} from './workspace.js'

export interface CompressStep {
  sweep: SweepReport
  choice: SharedRankChoice
  result: CompressReport
  /** Size of the written shared-B file. */
  file_bytes: number
  seconds: number
}

export async function compressStep(ws: DemoWorkspace, packPath: string, maxError: number, force: boolean, onProgress?: ProgressCallback): Promise<CompressStep> {
  const started = performance.now()
  const sweep = await sweepFile({inputs: [packPath], onProgress})
  const choice = chooseSharedRank(sweep, maxError)
  const result = await compressFile({inputs: [packPath], out: ws.path('shared-b.safetensors'), selection: {rank: choice.K}, force, onProgress})
  ws.wrote('shared-b.safetensors')
  return {sweep, choice, result, file_bytes: statSync(result.out).size, seconds: (performance.now() - started) / 1000}
}
