/**
 * The llama.cpp peer of the end-to-end benchmark: the run's model as a GGUF
 * and the adapters its requests ask for as GGUF LoRA adapters
 * (`llama-cpp-files.ts`), served by llama.cpp through node-llama-cpp the way
 * `llama-server -np <max batch> --lora …` serves them: one context of
 * max-batch slots, all those adapters loaded at start, and before each batch
 * the adapter set of the rows it serves applied (`LlamaCppBatch.useAdapter`).
 * llama.cpp applies LoRA per context, so a batch holds one adapter's
 * requests: the scheduler's `per-adapter` policy (`llama.cpp`). The same
 * model with no adapter at all batches every request together
 * (`llama.cpp-base`): its speed against `base` is the engine gap, and
 * `llama.cpp` against it the adapter gap.
 *
 * Both rows of one run share the files and the loaded model (one GGUF
 * written, one model mapped), each with its own context; the files live in
 * a temporary folder removed when the last of them closes.
 */
import {WorkFolder, createWorkFolder} from '../io/temporaries.js'
import {tmpdir} from 'node:os'
import {formatBytes} from '../units.js'
import {LlamaCppModel} from '../engines/llama-cpp-batch.js'
import {NODE_LLAMA_CPP_INSTALL, NODE_LLAMA_CPP_VERSION, locateLlamaCpp} from '../engines/llama-cpp.js'
import type {DecoderConfig} from '../runtime/decoder-config.js'
import type {DecoderWeights} from '../runtime/decoder-weights.js'
import type {E2eAdapterSet} from './adapter-set.js'
import type {BaseDtype} from './base-dtype.js'
import {PEER_ADAPTER_TYPE, PEER_MODEL_TYPES, PeerAdapterFiles, PeerModelFile, exportPeerAdapters, syntheticPeerProblem, writePeerModel} from './llama-cpp-files.js'
import {LlamaCppEngine, llamaCppKvBytesPerToken} from './llama-cpp-engine.js'
import type {E2eRequest} from './requests.js'

/**
 * Tokens one llama.cpp decode call takes at most: llama-server's physical
 * batch (`--ubatch-size`, default 512); node-llama-cpp splits larger
 * prefills over several calls as llama-server splits its logical batch.
 */
export const LLAMA_SERVER_UBATCH = 512

/** What the peer is built from (the end-to-end build context, structurally). */
export interface PeerBuildContext {
  /** The base as read (float32, before `--base-dtype`): what the model GGUF is written from. */
  readonly sourceWeights: DecoderWeights
  readonly adapters: E2eAdapterSet
  readonly threads: number
  readonly maxPositions: number
  readonly requests: readonly E2eRequest[]
  readonly maxBatch: number
  readonly baseDtype: BaseDtype
  /** `--model`, or undefined for a synthetic base. */
  readonly model?: string
  /** A folder whose node_modules holds node-llama-cpp, tried first. */
  readonly engineDir?: string
  readonly note?: (line: string) => void
}

/** A built peer row. */
export interface BuiltPeer {
  readonly engine: LlamaCppEngine
  readonly adapterBytes: number
  /** Counters: the adapter switches of the row with adapters. */
  stats?(): Record<string, number>
  close(): Promise<void>
}

/** What a run is, for `llamaCppUnavailable`. */
export interface PeerRunFacts {
  readonly engineDir?: string
  readonly model?: string
  readonly config: DecoderConfig
}

/** Why the peer cannot run, or undefined when it can. */
export function llamaCppUnavailable(run: PeerRunFacts): string | undefined {
  if (!locateLlamaCpp(run.engineDir ? {searchFrom: [run.engineDir]} : {})) {
    return `node-llama-cpp@${NODE_LLAMA_CPP_VERSION} is not installed where lora looks${run.engineDir ? ` (${run.engineDir}, then lora's own install and the current folder)` : ' (lora\'s own install, the current folder; --engine-dir names another)'}: ${NODE_LLAMA_CPP_INSTALL}`
  }
  return run.model ? undefined : syntheticPeerProblem(run.config)
}

interface Shared {
  refs: number
  readonly dir: Promise<string>
  /** The work folder (owner PID in its name: removed on exit, or by a later run after a SIGKILL). */
  readonly work: Promise<WorkFolder>
  readonly loaded: Promise<{file: PeerModelFile; model: LlamaCppModel}>
  adapters?: Promise<PeerAdapterFiles>
}

/** Per run (build context), the files and model both rows share. */
const SHARED = new WeakMap<PeerBuildContext, Shared>()

function share(ctx: PeerBuildContext): Shared {
  let s = SHARED.get(ctx)
  if (!s) {
    const work = createWorkFolder(tmpdir(), 'e2e-llama-cpp')
    const dir = work.then((w) => w.path)
    const loaded = dir.then(async (d) => {
      const file = await writePeerModel({dir: d, model: ctx.model, weights: ctx.sourceWeights, baseDtype: ctx.baseDtype, adapters: ctx.adapters})
      const model = await LlamaCppModel.open({model: file.path, threads: ctx.threads, ...(ctx.engineDir ? {searchFrom: [ctx.engineDir]} : {}), purpose: 'run the llama.cpp peer of lora bench --e2e'})
      ctx.note?.(`llama.cpp: the model written as a ${PEER_MODEL_TYPES[ctx.baseDtype]} GGUF (${formatBytes(file.bytes)}, ${file.seconds.toFixed(1)} s) into a temporary folder removed after the run; node-llama-cpp ${model.engine.version}, ${ctx.threads} threads`)
      return {file, model}
    })
    s = {refs: 0, dir, work, loaded}
    SHARED.set(ctx, s)
  }
  s.refs++
  return s
}

async function unshare(ctx: PeerBuildContext, s: Shared): Promise<void> {
  if (--s.refs > 0) return
  SHARED.delete(ctx)
  const loaded = await s.loaded.catch(() => undefined)
  await loaded?.model.close()
  await (await s.work.catch(() => undefined))?.remove()
}

/** The adapters the requests ask for, in order of first request, exported and loaded into the model (once per run). */
function exported(ctx: PeerBuildContext, s: Shared): Promise<PeerAdapterFiles> {
  s.adapters ??= s.loaded.then(async ({file, model}) => {
    const names = [...new Set(ctx.requests.flatMap((r) => (r.adapter === null ? [] : [r.adapter])))]
    const files = await exportPeerAdapters({dir: await s.dir, model: ctx.model, weights: ctx.sourceWeights, baseDtype: ctx.baseDtype, adapters: ctx.adapters}, file.path, names)
    for (const path of files.files.values()) await model.loadAdapter(path)
    ctx.note?.(`llama.cpp: ${files.files.size} adapters exported as ${PEER_ADAPTER_TYPE} GGUF LoRA adapters by lora export (${formatBytes(files.bytes)}, ${files.seconds.toFixed(1)} s), the distinct ones the requests ask for of the ${ctx.adapters.adapters.length} loaded, and loaded at start as llama-server --lora loads its adapters`)
    return files
  })
  return s.adapters
}

/**
 * Build a peer row: with adapters (`llama.cpp`: each row's adapter applied,
 * a batch per adapter) or without (`llama.cpp-base`: adapters ignored).
 * @throws UsageError when node-llama-cpp is absent; InputError when llama.cpp refuses the files
 */
export async function buildLlamaCppPeer(ctx: PeerBuildContext, options: {adapters: boolean}): Promise<BuiltPeer> {
  const s = share(ctx)
  try {
    const {model} = await s.loaded
    const files = options.adapters ? await exported(ctx, s) : undefined
    const batch = await model.createBatch({sequences: ctx.maxBatch, contextSize: ctx.maxPositions, batchSize: LLAMA_SERVER_UBATCH})
    const fileOf = (adapter: string | null) => {
      if (!files || adapter === null) return null
      const file = files.files.get(adapter)
      if (!file) throw new Error(`llama.cpp peer: no exported file for adapter "${adapter}" (it exports the adapters the requests ask for)`)
      return file
    }
    const engine = new LlamaCppEngine(batch, fileOf, llamaCppKvBytesPerToken(ctx.sourceWeights.config))
    return {
      engine,
      adapterBytes: files?.bytes ?? 0,
      ...(options.adapters ? {stats: () => ({adapter_switches: batch.switches})} : {}),
      async close() {
        await batch.close()
        await unshare(ctx, s)
      },
    }
  } catch (error) {
    await unshare(ctx, s)
    throw error
  }
}
