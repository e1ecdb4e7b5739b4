/**
 * The one onnxruntime runtime of the toolkit: the lazy loader (so the CLI
 * starts fast), the one session policy (execution provider, threads, the
 * options every session gets) and the provider choice (`auto` = the first
 * of cuda, webgpu, cpu that really initializes). Every session, the serving
 * graphs' and the matrix products' (`linalg/matmul-engine.ts`) alike, is
 * created here.
 */
import {UsageError} from '../errors.js'

type Ort = typeof import('onnxruntime-node')
/** An onnxruntime-node inference session. */
export type OrtSession = import('onnxruntime-node').InferenceSession
/** An onnxruntime-node tensor. */
export type OrtTensor = import('onnxruntime-node').Tensor

/** Execution providers a user may ask for. */
export const EXECUTION_PROVIDERS = ['cpu', 'webgpu', 'cuda'] as const
/** A provider a session can run on. */
export type ExecutionProvider = (typeof EXECUTION_PROVIDERS)[number]
/** A provider, or `auto` (the first of `AUTO_ORDER` that initializes). */
export type ExecutionProviderChoice = ExecutionProvider | 'auto'

/** Order in which `auto` tries providers. */
export const AUTO_ORDER: readonly ExecutionProvider[] = ['cuda', 'webgpu', 'cpu']

/** Graph fusions left out of every session (see `sessionOptions`). */
export const DISABLED_OPTIMIZERS = ['MatMulAddFusion', 'QuickGeluFusion'] as const

/** Intra-op threads by default: the 2-core machines these benches target. */
export const DEFAULT_INTRA_OP_THREADS = 2

let ortModule: Promise<Ort> | undefined

/** The onnxruntime-node module, imported once on first use. */
export async function loadOrt(): Promise<Ort> {
  ortModule ??= import('onnxruntime-node').then((m) => ((m as unknown as {default?: Ort}).default ?? m) as Ort)
  return ortModule
}

/** onnxruntime's version string (e.g. `1.30.0`). */
export async function ortVersion(): Promise<string> {
  const ort = await loadOrt()
  return ort.env.versions?.common ?? 'unknown'
}

/** What a caller chooses about a session; everything else is the policy of `sessionOptions`. */
export interface SessionSettings {
  /** Execution provider; default `cpu`. */
  ep?: ExecutionProvider
  /** Intra-op threads of the CPU provider; default `DEFAULT_INTRA_OP_THREADS`. */
  threads?: number
}

/** Session options for `settings`; the CPU provider always backs the others. */
export function sessionOptions(settings: SessionSettings = {}): import('onnxruntime-node').InferenceSession.SessionOptions {
  const ep = settings.ep ?? 'cpu'
  const providers = ep === 'cpu' ? ['cpu'] : [ep, 'cpu']
  return {
    executionProviders: providers,
    intraOpNumThreads: settings.threads ?? DEFAULT_INTRA_OP_THREADS,
    interOpNumThreads: 1,
    executionMode: 'sequential',
    graphOptimizationLevel: 'all',
    logSeverityLevel: 3,
    // idle intra-op threads block instead of spinning: strategies are timed turn by turn, each in its
    // own session, and a spinning pool left behind by one session would steal the cores of the next;
    // between matrix products the JavaScript thread converts the next chunk, and a spinning pool would
    // take its core (measured: a module's basis and stored values 1.2 + 0.4 s without spinning,
    // 1.9 + 1.1 s with it, on 2 shared cores)
    extra: {
      session: {intra_op: {allow_spinning: '0'}, inter_op: {allow_spinning: '0'}},
      // MatMul+Add → Gemm and x·sigmoid(x) → QuickGelu made the base model 5–10% slower here
      // (llama 2048/5632, decode batch 8 and 32, CPU provider); off for every strategy alike
      optimization: {disable_specified_optimizers: DISABLED_OPTIMIZERS.join(',')},
    },
  }
}

/**
 * Create a session under the policy of `sessionOptions`: for a model file at
 * a path (its external data beside it), or for encoded model bytes (a graph
 * without external data).
 */
export async function createSession(model: string | Uint8Array, settings: SessionSettings = {}): Promise<OrtSession> {
  const ort = await loadOrt()
  return typeof model === 'string' ? ort.InferenceSession.create(model, sessionOptions(settings)) : ort.InferenceSession.create(model, sessionOptions(settings))
}

/** A float32 or int64 tensor for feeds. */
export async function tensorOf(data: Float32Array | BigInt64Array, dims: readonly number[]): Promise<OrtTensor> {
  const ort = await loadOrt()
  return data instanceof Float32Array ? new ort.Tensor('float32', data, dims) : new ort.Tensor('int64', data, dims)
}

/** Whether a provider initialized, and why not. */
export interface ProviderProbe {
  ep: ExecutionProvider
  ok: boolean
  /** Why it failed, one line. */
  reason?: string
}

/**
 * Whether `ep` initializes: builds a one-node model and runs it, the only
 * test that catches a provider that is listed but has no usable device
 * (WebGPU without a Vulkan adapter, CUDA without its libraries).
 */
export async function probeProvider(ep: ExecutionProvider): Promise<ProviderProbe> {
  const ort = await loadOrt()
  if (ep === 'cpu') return {ep, ok: true}
  const listed = ort.listSupportedBackends().map((b) => b.name)
  if (!listed.includes(ep)) return {ep, ok: false, reason: `onnxruntime-node lists no ${ep} backend (has ${listed.join(', ')})`}
  const {GraphBuilder} = await import('./graph-builder.js')
  const g = new GraphBuilder('probe')
  g.input('x', 'float32', [2, 2])
  g.node('MatMul', ['x', 'x'], {}, {outputs: ['y']})
  g.output('y', 'float32', [2, 2])
  try {
    // only `ep` (no CPU fallback to hide a failure), and silent
    const session = await ort.InferenceSession.create(g.encode(), {...sessionOptions({ep, threads: 1}), executionProviders: [ep], logSeverityLevel: 4})
    const out = await session.run({x: new ort.Tensor('float32', Float32Array.from([1, 2, 3, 4]), [2, 2])})
    const y = out.y!.data as Float32Array
    await session.release()
    if (y[0] !== 7 || y[3] !== 22) return {ep, ok: false, reason: `${ep} ran a 2×2 MatMul wrong (got ${Array.from(y).join(', ')})`}
    return {ep, ok: true}
  } catch (error) {
    return {ep, ok: false, reason: firstLine((error as Error).message)}
  }
}

/** The provider chosen for a run, and how. */
export interface ResolvedProvider {
  ep: ExecutionProvider
  /** What was tried and why others were passed over. */
  detail: string
}

/** Resolve `auto` (cuda > webgpu > cpu, by what initializes) or check an explicit provider. */
export async function resolveProvider(choice: ExecutionProviderChoice): Promise<ResolvedProvider> {
  if (choice !== 'auto') {
    const probe = await probeProvider(choice)
    if (!probe.ok) throw new UsageError('EP_UNAVAILABLE', `--ep ${choice}: the provider does not initialize: ${probe.reason}`)
    return {ep: choice, detail: `${choice} (asked for)`}
  }
  const skipped: string[] = []
  for (const ep of AUTO_ORDER) {
    const probe = await probeProvider(ep)
    if (probe.ok) return {ep, detail: skipped.length === 0 ? `${ep} (auto)` : `${ep} (auto; ${skipped.join('; ')})`}
    skipped.push(`${ep}: ${probe.reason}`)
  }
  return {ep: 'cpu', detail: 'cpu'}
}

function firstLine(text: string): string {
  const line = text.split('\n').find((l) => l.trim().length > 0) ?? text
  return line.length > 300 ? `${line.slice(0, 297)}…` : line
}
