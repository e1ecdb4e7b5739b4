/** Demo step 1: a synthetic Llama-style base and N adapters of mixed ranks sharing a subspace. */
import {performance} from 'node:perf_hooks'
import type {ProgressCallback} from '../progress.js'
import {SynthAdaptersResult, synthesizeAdapters} from '../synth/adapters.js'
import {SynthBaseResult, synthesizeBase} from '../synth/base.js'
import type {DemoSettings} from './settings.js'
import type {DemoWorkspace} from './workspace.js'

export interface SynthStep {
  base: SynthBaseResult
  adapters: SynthAdaptersResult
  seconds: number
}

export async function synthStep(ws: DemoWorkspace, s: DemoSettings, seed: number, force: boolean, onProgress?: ProgressCallback): Promise<SynthStep> {
  const started = performance.now()
  const dims = {hidden: s.hidden, intermediate: s.intermediate, layers: s.layers}
  const base = await synthesizeBase({...dims, out: ws.path('base'), vocab: s.vocab, dtype: s.dtype, seed, force, onProgress})
  ws.wrote('base')
  const adapters = await synthesizeAdapters({
    ...dims,
    out: ws.path('adapters'),
    count: s.adapters,
    ranks: s.ranks,
    targets: s.targets,
    dtype: s.dtype,
    seed,
    sharedSubspace: s.sharedSubspace,
    force,
    onProgress,
  })
  ws.wrote('adapters')
  return {base, adapters, seconds: (performance.now() - started) / 1000}
}
