/**
 * `npm run bench:step`: where one batched decode step of the decoder runtime
 * spends its time, for the physical account of `bench:e2e` (a benchmark,
 * not a test). On the row-1 model of `bench:e2e` (synthetic Llama
 * 2048/5632 × 4, vocab 32000, f32, CPU) it prefills `--rows` requests of
 * `--prompt-tokens`, then times `--steps` decode steps three ways:
 *
 * - the runtime's `forward` call, as the scheduler sees it;
 * - `session.run` as JavaScript sees it (the onnxruntime-node binding:
 *   every feed copied in, every output copied into a new JavaScript buffer);
 * - onnxruntime's own profile of the same runs (`model_run`, and its kernels
 *   by operator), which starts after the feeds are in and ends before the
 *   outputs are handed back.
 *
 * The differences are the binding's copies (run − model_run) and the
 * runtime's own work around the call (forward − run). Medians over the
 * steps after the first.
 *
 * Then the binding alone, on a graph that does nothing but pass the same
 * bytes through (8 Identity nodes of the step's KV size) and one that only
 * reads them (ReduceSum): what feeding costs, and what returning costs, with
 * outputs allocated by the binding and with outputs preallocated (`fetches`).
 *
 *   npm run bench:step [-- --rows 32 --prompt-tokens 128 --steps 12 --threads 2] [-- --in-place]
 *
 * `--in-place` runs the step on an allocated cache (`KvCache.allocate`: past
 * and present one buffer, bound as preallocated outputs).
 */
import {mkdtempSync, readdirSync, readFileSync, rmSync} from 'node:fs'
import {tmpdir} from 'node:os'
import {join} from 'node:path'
import {renderTable} from '../src/cli/table.js'
import {syntheticDecoderWeights} from '../src/core/e2e/synthetic-decoder.js'
import {GraphBuilder} from '../src/core/onnx/graph-builder.js'
import {loadOrt, sessionOptions} from '../src/core/onnx/session.js'
import {DecoderModel} from '../src/core/runtime/decoder-model.js'
import {flag} from './script.js'

const rows = Number(flag('--rows', '32'))
const prompt = Number(flag('--prompt-tokens', '128'))
const steps = Number(flag('--steps', '12'))
const threads = Number(flag('--threads', '2'))
const dims = {hidden: 2048, intermediate: 5632, layers: 4, vocab: 32000}

// onnxruntime's profiler is a session option the runtime does not expose:
// this script turns it on for the sessions it creates, and times `run` as
// JavaScript sees it, by wrapping the module's session factory.
const profileDir = mkdtempSync(join(tmpdir(), 'lora-step-'))
const ort = await loadOrt()
const create = ort.InferenceSession.create.bind(ort.InferenceSession) as (model: unknown, options: object) => Promise<{run: (...args: unknown[]) => Promise<unknown>}>
let runMs = 0
;(ort.InferenceSession as unknown as {create: unknown}).create = async (model: unknown, options: object) => {
  const session = await create(model, {...options, enableProfiling: true, profileFilePrefix: join(profileDir, 'step')})
  const run = session.run.bind(session)
  session.run = async (...args: unknown[]) => {
    const t0 = performance.now()
    try {
      return await run(...args)
    } finally {
      runMs += performance.now() - t0
    }
  }
  return session
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!
try {
  console.log(`== one decode step: llama ${dims.hidden}/${dims.intermediate} × ${dims.layers}, vocab ${dims.vocab}, f32, ${rows} rows, context ${prompt}…${prompt + steps}, cpu, ${threads} threads ==`)
  const model = await DecoderModel.create({weights: syntheticDecoderWeights(dims, 1), threads, maxPositions: prompt + steps + 1})
  const inPlace = process.argv.includes('--in-place')
  let out = await model.forward({tokens: Array.from({length: rows}, (_, r) => Array.from({length: prompt}, (_, i) => (r * 131 + i * 7) % dims.vocab)), cache: inPlace ? model.emptyCache(rows, prompt + steps + 1) : undefined})
  const forwardMs: number[] = []
  const bindingMs: number[] = []
  for (let s = 0; s < steps; s++) {
    runMs = 0
    const t0 = performance.now()
    out = await model.forward({tokens: out.logits.map((_, r) => [(r + s) % dims.vocab]), cache: out.cache})
    forwardMs.push(performance.now() - t0)
    bindingMs.push(runMs)
  }
  await model.release() // writes the profile
  const file = readdirSync(profileDir).find((f) => f.endsWith('.json'))!
  const events = JSON.parse(readFileSync(join(profileDir, file), 'utf8')) as Array<{cat: string; name: string; ts: number; dur: number; args?: {op_name?: string}}>
  const runs = events.filter((e) => e.cat === 'Session' && e.name === 'model_run').slice(-(steps - 1)) // the decode steps after the first
  const inRun = (e: {ts: number}) => runs.some((r) => e.ts >= r.ts && e.ts <= r.ts + r.dur)
  const byOp = new Map<string, number>()
  for (const e of events) if (e.cat === 'Node' && e.name.endsWith('_kernel_time') && inRun(e)) byOp.set(e.args?.op_name ?? '?', (byOp.get(e.args?.op_name ?? '?') ?? 0) + e.dur / 1000 / runs.length)
  const modelRun = median(runs.map((r) => r.dur / 1000))
  const forward = median(forwardMs.slice(1))
  const binding = median(bindingMs.slice(1))
  const ops = [...byOp].sort((a, b) => b[1] - a[1])
  const pct = (ms: number) => `${((100 * ms) / forward).toFixed(0)}%`
  console.log(
    renderTable(
      ['part of a decode step', 'ms (median)', 'of the step'],
      [
        ['forward call (what the scheduler waits for)', forward.toFixed(1), '100%'],
        ['  session.run as JavaScript sees it', binding.toFixed(1), pct(binding)],
        ['    onnxruntime model_run (its profile)', modelRun.toFixed(1), pct(modelRun)],
        ...ops.slice(0, 4).map(([op, ms]) => [`      ${op} kernels`, ms.toFixed(1), pct(ms)]),
        ['    the binding: feeds in, outputs out (run − model_run)', (binding - modelRun).toFixed(1), pct(binding - modelRun)],
        ['  the runtime around the call (forward − run)', (forward - binding).toFixed(1), pct(forward - binding)],
      ],
    ),
  )
  const kvBytes = 2 * dims.layers * rows * (prompt + steps / 2) * dims.hidden * 4
  const returned = inPlace ? 'only the new positions returned (the cache writes them itself)' : 'the present ones returned, about as many'
  console.log(`\nThe past keys and values fed each step are about ${(kvBytes / 2 ** 20).toFixed(0)} MiB (${rows} rows × ${prompt + steps / 2} positions × ${dims.layers} layers × 2 × ${dims.hidden} floats); ${returned}.`)
  await bindingProbe(kvBytes / 4 / (2 * dims.layers), 2 * dims.layers)

} finally {
  rmSync(profileDir, {recursive: true, force: true})
}

/** The binding alone: `tensors` float32 tensors of `length` values fed to graphs that pass them through or only read them. */
async function bindingProbe(length: number, tensors: number): Promise<void> {
  const n = Math.round(length)
  const graph = (op: 'Identity' | 'ReduceSum') => {
    const g = new GraphBuilder(`binding-${op}`)
    for (let i = 0; i < tensors; i++) {
      g.input(`x${i}`, 'float32', [n])
      g.node(op, [`x${i}`], op === 'ReduceSum' ? {keepdims: 0} : {}, {outputs: [`y${i}`]})
      g.output(`y${i}`, 'float32', op === 'ReduceSum' ? [] : [n])
    }
    return g.encode()
  }
  const cases = [
    {label: 'feed only (ReduceSum: the inputs read, a scalar back)', model: graph('ReduceSum'), preallocated: false},
    {label: 'feed and return (Identity), outputs from the binding', model: graph('Identity'), preallocated: false},
    {label: 'feed and return (Identity), outputs preallocated', model: graph('Identity'), preallocated: true},
  ]
  const rowsOut: string[][] = []
  for (const c of cases) {
    const session = await ort.InferenceSession.create(c.model, sessionOptions({ep: 'cpu', threads}))
    const feeds: Record<string, InstanceType<typeof ort.Tensor>> = {}
    const fetches: Record<string, InstanceType<typeof ort.Tensor>> = {}
    for (let i = 0; i < tensors; i++) {
      feeds[`x${i}`] = new ort.Tensor('float32', new Float32Array(n).fill(1), [n])
      if (c.preallocated) fetches[`y${i}`] = new ort.Tensor('float32', new Float32Array(n), [n])
    }
    const times: number[] = []
    for (let r = 0; r < 7; r++) {
      const t0 = performance.now()
      await (c.preallocated ? session.run(feeds, fetches) : session.run(feeds))
      times.push(performance.now() - t0)
    }
    await session.release()
    rowsOut.push([c.label, median(times.slice(1)).toFixed(1)])
  }
  console.log(`\nThe binding alone, ${tensors} tensors of ${((n * 4) / 2 ** 20).toFixed(0)} MiB (${((tensors * n * 4) / 2 ** 20).toFixed(0)} MiB in all):`)
  console.log(renderTable(['graph', 'session.run ms (median)'], rowsOut))
}
