/**
 * A strategy ready to serve steps: a session over its graph, fed from a
 * routing step by the strategy's `feeds`; or the strategy's own executor
 * (merged's merge-and-swap loop) when it has one.
 */
import {createSession, loadOrt, OrtSession, OrtTensor} from '../onnx/session.js'
import {buildStackModel} from './model-stack.js'
import {Strategy, strategyOf} from './registry.js'
import {RoutingStep, coveringSteps} from './routing.js'
import type {Executor, ExecutorOptions, ServeStrategy} from './strategy.js'
import type {WeightSet} from './weights/weight-set.js'

/**
 * Requests gathered and multiplied together in decode graphs (strategies
 * with `chunkedDecode`: gather, shared-b). Measured on the 2-core CPU
 * provider (llama 2048/5632, 1,000 adapters, batch 32): chunks of 2 ran
 * rank 16 at 1.0× and rank 64 at 0.81× base against 0.94× and 0.66× for one
 * gather of the whole batch: a chunk's gathered weights are still in cache
 * when its product reads them; chunks of 1 lose that gain again to the
 * extra operators.
 */
export const DECODE_CHUNK = 2

/** The executor of `strategy` over `set`: its own, or a `GraphExecutor`. */
export async function createExecutor(set: WeightSet, strategy: Strategy | ServeStrategy, options: ExecutorOptions): Promise<Executor> {
  const s = typeof strategy === 'string' ? strategyOf(strategy) : strategy
  return s.createExecutor ? s.createExecutor(set, options) : GraphExecutor.create(set, s, options)
}

/** A strategy that is one ONNX graph. */
export class GraphExecutor implements Executor {
  private constructor(
    private readonly definition: ServeStrategy,
    private readonly session: OrtSession,
    private readonly set: WeightSet,
    private readonly tokens: number,
    readonly weightBytes: number,
    readonly label: string,
  ) {}

  /** The strategy's name. */
  get strategy(): string {
    return this.definition.name
  }

  /** @throws Error for a strategy that is not one graph (it has its own executor: use `createExecutor`). */
  static async create(set: WeightSet, strategy: Strategy | ServeStrategy, options: ExecutorOptions): Promise<GraphExecutor> {
    const s = typeof strategy === 'string' ? strategyOf(strategy) : strategy
    if (s.createExecutor) throw new Error(`strategy ${s.name} is not one graph: create it with createExecutor`)
    const label = options.label ?? s.name
    const chunk = options.chunk ?? (options.batch && options.tokens === 1 && s.chunkedDecode ? {batch: options.batch, size: DECODE_CHUNK} : undefined)
    const model = buildStackModel(set, {strategy: s, tokens: options.tokens, form: options.form, chunk, fileName: `model-${label}-t${options.tokens}.onnx`})
    const session = await createSession(model.path, {ep: options.ep, threads: options.threads})
    return new GraphExecutor(s, session, set, options.tokens, set.bytes(model.weights), label)
  }

  async run(step: RoutingStep, x: Float32Array): Promise<Float32Array> {
    return this.runWith(step, x, this.tokens)
  }

  private async runWith(step: RoutingStep, x: Float32Array, tokens: number): Promise<Float32Array> {
    const ort = await loadOrt()
    const D = this.set.spec.dims.hidden
    const rows = step.slots.length * tokens
    const feeds: Record<string, OrtTensor> = {x: new ort.Tensor('float32', x.subarray(0, rows * D), [rows, D])}
    for (const [name, a] of Object.entries(this.definition.feeds(step, tokens, this.set.slots))) {
      feeds[name] = a.data instanceof Float32Array ? new ort.Tensor('float32', a.data, a.dims) : new ort.Tensor('int64', a.data, a.dims)
    }
    const out = await this.session.run(feeds)
    return out.y!.data as Float32Array
  }

  async warm(x: Float32Array, batch: number, adapters: number): Promise<void> {
    // one token per request: the graphs take T from the row count, so warm-up stays cheap for prefill;
    // a strategy that reads no adapter weights has nothing to map
    const steps = coveringSteps(this.definition.weights.length === 0 ? 0 : adapters, batch)
    for (const step of steps) await this.runWith(step, x, 1)
  }

  async close(): Promise<void> {
    await this.session.release()
  }
}
