/**
 * The `merged` strategy: one merged model per adapter, requests grouped by
 * adapter and run one group after another (weight swapping). At most C
 * merged weight sets are held (LRU); the others are merged on demand
 * (`Wᵀ + (s·B·A)ᵀ` in an ORT session) and every merge and switch counts in
 * the step's time.
 */
import {writeFileSync} from 'node:fs'
import {withFileContextSync} from '../errors.js'
import {join} from 'node:path'
import {GraphBuilder} from '../onnx/graph-builder.js'
import {OrtSession, OrtTensor, createSession, loadOrt} from '../onnx/session.js'
import {gatherAsFloat} from './fragments.js'
import {layoutNames} from './lora-layout.js'
import {buildStackModel} from './model-stack.js'
import type {RoutingStep} from './routing.js'
import type {Executor, ExecutorOptions} from './strategy.js'
import {WeightSet, externalWeights} from './weights/weight-set.js'

/** What the merged executor did since its warm-up: merges run, cache hits, weight switches. */
export interface MergedStats {
  merges: number
  hits: number
  switches: number
}

/** The `merged` strategy's executor: merge on demand, hold C merged copies (LRU), run each adapter's requests on its merged weights. */
export class MergedExecutor implements Executor {
  readonly strategy = 'merged' as const
  readonly label = 'merged'
  /** LRU: insertion order is recency. */
  private readonly cache = new Map<number, Record<string, OrtTensor>>()
  readonly stats: MergedStats = {merges: 0, hits: 0, switches: 0}

  private constructor(
    private readonly set: WeightSet,
    private readonly model: OrtSession,
    private readonly merge: OrtSession,
    private readonly baseWeights: Record<string, OrtTensor>,
    private readonly capacity: number,
    private readonly tokens: number,
    readonly weightBytes: number,
  ) {}

  /** `capacity` = C merged copies held at once (≥ 1). */
  static async create(set: WeightSet, capacity: number, options: ExecutorOptions): Promise<MergedExecutor> {
    const ort = await loadOrt()
    const built = buildStackModel(set, {tokens: options.tokens, weightInputs: true, fileName: `model-merged-t${options.tokens}.onnx`})
    const mergePath = writeMergeModel(set)
    const settings = {ep: options.ep, threads: options.threads}
    const [model, merge] = await Promise.all([createSession(built.path, settings), createSession(mergePath, settings)])
    const baseWeights: Record<string, OrtTensor> = {}
    let mergedBytes = 0
    for (const m of set.modules) {
      if (!m.targeted) continue
      baseWeights[`W:${m.key}`] = new ort.Tensor('float32', set.read(layoutNames.weight(m), 0, m.in * m.out), [m.in, m.out])
      mergedBytes += m.in * m.out * 4
    }
    const stackNames = set.groups.flatMap((g) => [layoutNames.groupA(g), ...g.members.map((m) => layoutNames.moduleB(m))])
    const resident = set.bytes(built.weights) + set.bytes(stackNames) + mergedBytes * (capacity + 1)
    return new MergedExecutor(set, model, merge, baseWeights, capacity, options.tokens, resident)
  }

  /** Merged weights of `slot`: from the cache, or merged now (evicting the least recently used). */
  private async weightsFor(slot: number): Promise<Record<string, OrtTensor>> {
    if (slot === 0) return this.baseWeights
    const hit = this.cache.get(slot)
    if (hit) {
      this.cache.delete(slot)
      this.cache.set(slot, hit)
      this.stats.hits++
      return hit
    }
    const ort = await loadOrt()
    const out = await this.merge.run({slot: new ort.Tensor('int64', BigInt64Array.of(BigInt(slot)), [1])})
    this.stats.merges++
    const weights = out as Record<string, OrtTensor>
    if (this.cache.size >= this.capacity) this.cache.delete(this.cache.keys().next().value!)
    this.cache.set(slot, weights)
    return weights
  }

  async run(step: RoutingStep, x: Float32Array): Promise<Float32Array> {
    return this.runWith(step, x, this.tokens)
  }

  private async runWith(step: RoutingStep, x: Float32Array, tokens: number): Promise<Float32Array> {
    const ort = await loadOrt()
    const D = this.set.spec.dims.hidden
    const y = new Float32Array(step.slots.length * tokens * D)
    const groups = new Map<number, number[]>()
    step.slots.forEach((slot, b) => groups.set(slot, [...(groups.get(slot) ?? []), b]))
    for (const [slot, requests] of groups) {
      const weights = await this.weightsFor(slot)
      this.stats.switches++
      const rows = new Float32Array(requests.length * tokens * D)
      requests.forEach((b, i) => rows.set(x.subarray(b * tokens * D, (b + 1) * tokens * D), i * tokens * D))
      const out = await this.model.run({x: new ort.Tensor('float32', rows, [requests.length * tokens, D]), ...weights})
      const yg = out.y!.data as Float32Array
      requests.forEach((b, i) => y.set(yg.subarray(i * tokens * D, (i + 1) * tokens * D), b * tokens * D))
    }
    return y
  }

  async warm(x: Float32Array, batch: number): Promise<void> {
    // one step with one adapter and the base (sessions initialised); the stacks are read by merges on demand
    const slots = new Int32Array(batch)
    slots[0] = 1
    await this.runWith({slots}, x, 1)
    this.cache.clear()
    Object.assign(this.stats, {merges: 0, hits: 0, switches: 0})
  }

  async close(): Promise<void> {
    this.cache.clear()
    await Promise.all([this.model.release(), this.merge.release()])
  }
}

/** The merge graph: `slot [1]` → `W:<module> = Wᵀ + Aᵀ·(s·B)ᵀ` `[in, out]` for every adapted module. */
function writeMergeModel(set: WeightSet): string {
  const g = new GraphBuilder('merge')
  const R = set.rank
  g.input('slot', 'int64', [1])
  const {weight} = externalWeights(g, set)
  /** One slot of a stack, as f32 (f16 stacks are cast after the Gather). */
  const gather = (name: string) => gatherAsFloat(g, weight(name), set.tensor(name).type, 'slot')
  for (const group of set.groups) {
    const G = group.members.length
    const a = g.op('Reshape', [gather(layoutNames.groupA(group)), g.ints(g.fresh('shape'), [G * R, group.in])])
    group.members.forEach((m, j) => {
      const aj = G === 1 ? a : g.op('Slice', [a, g.ints(g.fresh('st'), [j * R]), g.ints(g.fresh('en'), [(j + 1) * R]), g.ints(g.fresh('ax'), [0])])
      const b = g.op('Reshape', [gather(layoutNames.moduleB(m)), g.ints(g.fresh('shape'), [m.out, R])])
      const dwT = g.op('MatMul', [g.op('Transpose', [aj], {perm: [1, 0]}), g.op('Transpose', [b], {perm: [1, 0]})])
      g.node('Add', [weight(layoutNames.weight(m)), dwT], {}, {outputs: [`W:${m.key}`]})
      g.output(`W:${m.key}`, 'float32', [m.in, m.out])
    })
  }
  const path = join(set.dir, 'model-merge.onnx')
  withFileContextSync('write', path, () => writeFileSync(path, g.encode()))
  return path
}
