/**
 * A strategy ready to serve steps: a session over its graph (or, for
 * `merged`, the merge-and-swap loop of `merged.ts`), fed from a routing step.
 */
import {GraphStrategy, MatmulForm} from '../onnx/routed-lora.js'
import {buildStackModel} from '../onnx/model-stack.js'
import {ExecutionProvider, OrtSession, createSession, loadOrt} from '../onnx/session.js'
import {routingArrays} from './feeds.js'
import type {WeightSet} from './weight-set.js'
import {RoutingStep, coveringSteps} from './workload.js'

/** Every strategy the bench knows, in table order. */
export const STRATEGIES = ['base', 'gather', 'segment', 'shared-b', 'mask', 'merged'] as const
export type Strategy = (typeof STRATEGIES)[number]

export interface Executor {
  readonly strategy: Strategy
  /** Name in timings: the strategy, or a graph variant's name. */
  readonly label: string
  /** Bytes of weights the strategy keeps resident. */
  readonly weightBytes: number
  /** Serve one step: `x [N, hidden]` → `y [N, hidden]`. */
  run(step: RoutingStep, x: Float32Array): Promise<Float32Array>
  /** Route every adapter once (maps every page of the stacks), outside timing. */
  warm(x: Float32Array, batch: number, adapters: number): Promise<void>
  close(): Promise<void>
}

export interface ExecutorOptions {
  ep: ExecutionProvider
  threads?: number
  /** Tokens per request T. */
  tokens: number
  /** Product layout override (graph-variant comparisons). */
  form?: MatmulForm
  /** Label override (graph-variant comparisons). */
  label?: string
  /** Requests per step, when fixed: lets decode graphs gather in chunks (`DECODE_CHUNK`). */
  batch?: number
  /** Decode request chunks; default `DECODE_CHUNK` requests when `batch` is given. */
  chunk?: {batch: number; size: number}
}

/**
 * Requests gathered and multiplied together in decode graphs (gather,
 * shared-b). Measured on the 2-core CPU provider (llama 2048/5632, 1,000
 * adapters, batch 32): chunks of 2 ran rank 16 at 1.0× and rank 64 at 0.81×
 * base against 0.94× and 0.66× for one gather of the whole batch: a chunk's
 * gathered weights are still in cache when its product reads them; chunks of
 * 1 lose that gain again to the extra operators.
 */
export const DECODE_CHUNK = 2

/** A strategy that is one ONNX graph. */
export class GraphExecutor implements Executor {
  private constructor(
    readonly strategy: GraphStrategy,
    private readonly session: OrtSession,
    private readonly set: WeightSet,
    private readonly tokens: number,
    readonly weightBytes: number,
    readonly label: string,
  ) {}

  static async create(set: WeightSet, strategy: GraphStrategy, options: ExecutorOptions): Promise<GraphExecutor> {
    const label = options.label ?? strategy
    const chunk = options.chunk ?? (options.batch && options.tokens === 1 && (strategy === 'gather' || strategy === 'shared-b') ? {batch: options.batch, size: DECODE_CHUNK} : undefined)
    const model = buildStackModel(set, {strategy, tokens: options.tokens, form: options.form, chunk, fileName: `model-${label}-t${options.tokens}.onnx`})
    const session = await createSession(model.path, {ep: options.ep, threads: options.threads})
    return new GraphExecutor(strategy, session, set, options.tokens, set.bytes(model.weights), label)
  }

  async run(step: RoutingStep, x: Float32Array): Promise<Float32Array> {
    return this.runWith(step, x, this.tokens)
  }

  private async runWith(step: RoutingStep, x: Float32Array, tokens: number): Promise<Float32Array> {
    const ort = await loadOrt()
    const D = this.set.spec.dims.hidden
    const rows = step.slots.length * tokens
    const feeds: Record<string, import('onnxruntime-node').Tensor> = {x: new ort.Tensor('float32', x.subarray(0, rows * D), [rows, D])}
    for (const [name, a] of Object.entries(routingArrays(this.strategy, step, tokens, this.set.slots))) {
      feeds[name] = a.data instanceof Float32Array ? new ort.Tensor('float32', a.data, a.dims) : new ort.Tensor('int64', a.data, a.dims)
    }
    const out = await this.session.run(feeds)
    return out.y!.data as Float32Array
  }

  async warm(x: Float32Array, batch: number, adapters: number): Promise<void> {
    // one token per request: the graphs take T from the row count, so warm-up stays cheap for prefill
    const steps = this.strategy === 'base' ? coveringSteps(0, batch) : coveringSteps(adapters, batch)
    for (const step of steps) await this.runWith(step, x, 1)
  }

  async close(): Promise<void> {
    await this.session.release()
  }
}
