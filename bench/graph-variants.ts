/**
 * `npm run bench:graphs`: routed-LoRA graph designs side by side, timed
 * interleaved in one process, each checked against the float64 reference:
 *
 * - `gather`          the default: fused A per input group (q/k/v, gate/up),
 *                     products in the GEMV form (weights left: MLAS's one-column
 *                     kernel reads the gathered weights without packing them),
 *                     decode requests gathered DECODE_CHUNK at a time;
 * - `gather-whole-batch` the same with one gather for the whole batch;
 * - `gather-unfused`  one A stack and one Gather per projection (the naive graph);
 * - `gather-gemm`     fused A, products in the GEMM form (gathered weights
 *                     transposed and packed per request: what prefill uses);
 * - `gather-chunkC`    decode requests gathered and multiplied C at a time;
 * - `segment`, `shared-b` for reference.
 *
 *   npm run bench:graphs -- [--quick] [--batch 32] [--rank 16] [--targets all] [--adapters 1000] [--prefill T] [--rounds 12] [--chunk 1,4] [--no-unfused] [--cpu-clock]
 *
 * `--cpu-clock` times steps in process CPU time instead of wall time: steadier
 * when other jobs share the cores, useful to compare graphs, not a latency.
 */
import {join, resolve} from 'node:path'
import {renderTable} from '../src/cli/table.js'
import {parseTargets} from '../src/cli/llama-flags.js'
import {GraphExecutor} from '../src/core/serve/executors.js'
import type {Executor} from '../src/core/serve/strategy.js'
import {compareRows, referenceRows} from '../src/core/serve/reference.js'
import {latencyStats, timeInterleaved} from '../src/core/bench/runner.js'
import {WeightSetSpec, prepareWeightSet} from '../src/core/serve/weights/weight-set.js'
import {drawSteps} from '../src/core/bench/workload.js'
import {Rng} from '../src/core/random.js'
import {ROOT, flag} from './script.js'

const quick = process.argv.includes('--quick')
const hidden = quick ? 256 : 2048
const intermediate = quick ? 704 : 5632
const batch = Number(flag('--batch', '32'))
const rank = Number(flag('--rank', '16'))
const tokens = Number(flag('--prefill', '1'))
const adapters = Number(flag('--adapters', quick ? '100' : '1000'))
const rounds = Number(flag('--rounds', '12'))
const chunkSizes = flag('--chunk', '1,4').split(',').map(Number)
const targets = parseTargets(flag('--targets', 'q,k,v,o'))
const workDir = resolve(flag('--work-dir', join(ROOT, '.bench-work')))

const spec = (fuse: boolean): WeightSetSpec => ({
  dims: {model: 'llama', hidden, intermediate, layers: 2, targets},
  adapters,
  ranks: [rank],
  sharedK: 16,
  fuse,
  seed: 0,
  include: {stacks: true, shared: fuse},
})

console.log(`graph variants: llama ${hidden}/${intermediate} × 2 layers, targets ${targets.join(',')}, ${adapters} distinct adapters, rank ${rank}, batch ${batch}${tokens > 1 ? ` × ${tokens} tokens` : ''}, cpu, 2 threads, ${process.argv.includes('--cpu-clock') ? 'CPU-time' : 'wall'} clock`)
const fused = await prepareWeightSet(spec(true), {workDir})
const withUnfused = !process.argv.includes('--no-unfused')
const unfused = withUnfused ? await prepareWeightSet(spec(false), {workDir}) : fused
const options = {ep: 'cpu' as const, threads: 2, tokens, batch}
const variants: Array<{executor: Executor; set: typeof fused; kind: 'base' | 'stacks' | 'shared'}> = []
const add = async (set: typeof fused, strategy: 'base' | 'gather' | 'segment' | 'shared-b', label: string, form?: 'gemv' | 'gemm', chunk?: number) => {
  const executor = await GraphExecutor.create(set, strategy, {...options, label, form, ...(chunk ? {chunk: {batch, size: chunk}} : {})})
  variants.push({executor, set, kind: strategy === 'base' ? 'base' : strategy === 'shared-b' ? 'shared' : 'stacks'})
}
await add(fused, 'base', 'base')
await add(fused, 'gather', 'gather')
if (tokens === 1) await add(fused, 'gather', 'gather-whole-batch', 'gemv', batch)
if (withUnfused) await add(unfused, 'gather', 'gather-unfused')
await add(fused, 'gather', tokens === 1 ? 'gather-gemm' : 'gather-gemv', tokens === 1 ? 'gemm' : 'gemv')
if (tokens === 1) for (const c of chunkSizes) await add(fused, 'gather', `gather-chunk${c}`, 'gemv', c)
await add(fused, 'segment', 'segment')
await add(fused, 'shared-b', 'shared-b')
if (tokens === 1) await add(fused, 'shared-b', 'shared-b-whole-batch', 'gemv', batch)

const rng = new Rng(0, 'x')
const x = Float32Array.from({length: batch * tokens * hidden}, () => rng.next() * 2 - 1)
const steps = drawSteps({workload: {kind: 'distinct'}, adapters, batch, baseFraction: 0, seed: 0, steps: 32})
for (const v of variants) await v.executor.warm(x, batch, adapters)
const rows = [0, Math.floor(batch / 2) * tokens]
const errors = new Map<string, number>()
for (const v of variants) {
  const ref = await referenceRows({set: v.set, kind: v.kind, step: steps[0]!, tokens, x, rows})
  const {maxAbsError, maxAbsRef} = compareRows(await v.executor.run(steps[0]!, x), hidden, rows, ref)
  errors.set(v.executor.label, maxAbsError / maxAbsRef)
}
const samples = await timeInterleaved(
  variants.map((v) => v.executor),
  steps,
  x,
  {rounds, stepsPerRound: tokens > 1 ? 1 : 2, warmupSteps: 2, budgetMs: 60_000, minSamples: 3, clock: process.argv.includes('--cpu-clock') ? 'cpu' : 'wall'},
)
const base = latencyStats(samples.get('base')!)
console.log(
  '\n' +
    renderTable(
      ['graph', 'mean ms', 'p50 ms', 'vs base (means)', 'vs base (medians)', 'rel. error', 'steps'],
      variants.map(({executor}) => {
        const s = latencyStats(samples.get(executor.label)!)
        return [executor.label, s.mean.toFixed(2), s.p50.toFixed(2), (base.mean / s.mean).toFixed(3), (base.p50 / s.p50).toFixed(3), errors.get(executor.label)!.toExponential(1), s.samples]
      }),
    ),
)
for (const v of variants) await v.executor.close()
