/**
 * `npm run bench:eval`: the two performance targets of `lora eval` (issue 13).
 *
 * 1. `stories`: `lora eval` of ../shared/real-models/stories260K/eval.txt with
 *    lora_medium and every default variant, wall time from the call to the
 *    report (target ≤ 15 s on the 2-core machines), with the time of each
 *    stage (reference, each variant, each control).
 * 2. `prefill`: a synthetic Llama-shaped model of about 0.5 B parameters
 *    (hidden 1024, intermediate 4096, 26 layers, vocab 32000, untied head:
 *    502 M; written once as F16 under the work folder and reused), one
 *    prefill of `--tokens` tokens through the runtime's decoder graph against
 *    onnxruntime running only the same linear products
 *    (`core/runtime/matmul-baseline.ts`), timed interleaved, medians
 *    compared (target: runtime ≤ 1.5 × MatMul time: attention and glue cost
 *    no more than half again).
 *
 *   npm run bench:eval [-- --quick] [-- --only stories|prefill] [-- --tokens 512] [-- --rounds 7] [-- --threads N]
 *                      [-- --hidden H --intermediate I --layers L --vocab V] [-- --work-dir DIR]
 *
 * `--quick` runs the prefill part at a small size (hidden 256, 2 layers), to
 * check that the script works; the figures are the lead's to measure on a
 * quiet machine.
 */
import {existsSync} from 'node:fs'
import {join, resolve} from 'node:path'
import {renderEval} from '../src/cli/render-eval.js'
import {renderTable} from '../src/cli/table.js'
import {buildMatMulBaseline} from '../src/core/runtime/matmul-baseline.js'
import {latencyStats} from '../src/core/bench/runner.js'
import {evaluateVariants} from '../src/core/eval/run-eval.js'
import {DecoderModel} from '../src/core/runtime/decoder-model.js'
import {openDecoderWeights} from '../src/core/runtime/load-decoder.js'
import {Rng} from '../src/core/random.js'
import {synthesizeBase} from '../src/core/synth/base.js'
import {ROOT, flag} from './script.js'

const quick = process.argv.includes('--quick')
const only = flag('--only', 'all')
const workDir = resolve(flag('--work-dir', join(ROOT, '.bench-work')))
const threads = process.argv.includes('--threads') ? Number(flag('--threads', '2')) : undefined
const STORIES = resolve(ROOT, '../shared/real-models/stories260K')
const STORIES_TARGET_S = 15
const PREFILL_TARGET = 1.5

async function stories(): Promise<void> {
  if (!existsSync(join(STORIES, 'hf/config.json'))) {
    console.log(`stories: skipped, ${STORIES} is absent`)
    return
  }
  const stages = new Map<string, number>()
  let stage = ''
  let since = performance.now()
  const start = since
  const result = await evaluateVariants({
    base: join(STORIES, 'hf'),
    adapters: [{path: join(STORIES, 'adapters/lora_medium')}],
    text: join(STORIES, 'eval.txt'),
    threads,
    onProgress: (p) => {
      if (p.stage === stage) return
      const now = performance.now()
      if (stage) stages.set(stage, now - since)
      stage = p.stage
      since = now
    },
  })
  const end = performance.now()
  stages.set(stage, end - since)
  const wall = (end - start) / 1000
  console.log(`\n== lora eval, stories260K + lora_medium, eval.txt, default variants ==\n${renderEval(result)}\n`)
  console.log(renderTable(['stage (model passes; build + run)', 'ms'], [...stages].map(([s, ms]) => [s, Math.round(ms)])))
  console.log(`\nwall time ${wall.toFixed(2)} s (target ≤ ${STORIES_TARGET_S} s): ${wall <= STORIES_TARGET_S ? 'met' : 'MISSED'}`)
}

async function prefill(): Promise<void> {
  const dims = {
    hidden: Number(flag('--hidden', quick ? '256' : '1024')),
    intermediate: Number(flag('--intermediate', quick ? '704' : '4096')),
    layers: Number(flag('--layers', quick ? '2' : '26')),
    vocab: Number(flag('--vocab', quick ? '1000' : '32000')),
  }
  const tokens = Number(flag('--tokens', quick ? '128' : '512'))
  const rounds = Number(flag('--rounds', quick ? '3' : '7'))
  const dir = join(workDir, `eval-llama-${dims.hidden}x${dims.intermediate}x${dims.layers}-v${dims.vocab}-f16`)
  if (!existsSync(join(dir, 'config.json'))) {
    console.log(`synthesizing ${dir} …`)
    await synthesizeBase({...dims, out: dir, dtype: 'F16', seed: 0})
  }
  const weights = await openDecoderWeights(dir)
  try {
    const c = weights.config
    const params = c.layers * (c.hidden * (2 * c.heads * c.headDim + 2 * c.kvHeads * c.headDim) + 3 * c.hidden * c.intermediate) + (c.tieEmbeddings ? 1 : 2) * c.vocab * c.hidden
    console.log(`\n== prefill: ${(params / 1e9).toFixed(3)} B parameters (hidden ${c.hidden}, intermediate ${c.intermediate}, ${c.layers} layers, ${c.heads} heads, vocab ${c.vocab}), ${tokens} tokens, ${rounds} rounds ==`)
    let t = performance.now()
    const model = await DecoderModel.create({weights, maxPositions: tokens, threads})
    console.log(`runtime graph built and loaded in ${((performance.now() - t) / 1000).toFixed(1)} s (${model.summary.nodes} nodes)`)
    t = performance.now()
    const baseline = await buildMatMulBaseline(weights, {rows: tokens, logitRows: 1, threads})
    console.log(`MatMul baseline built and loaded in ${((performance.now() - t) / 1000).toFixed(1)} s (${baseline.products} products)`)
    try {
      const rng = new Rng(1, 'prefill')
      const ids = Array.from({length: tokens}, () => rng.int(c.vocab))
      const runs: Record<string, () => Promise<unknown>> = {
        runtime: () => model.forward({tokens: [ids], logits: 'last'}),
        matmul: () => baseline.run(),
      }
      const samples: Record<string, number[]> = {runtime: [], matmul: []}
      for (const run of Object.values(runs)) await run() // warm-up
      for (let r = 0; r < rounds; r++)
        for (const name of r % 2 === 0 ? ['runtime', 'matmul'] : ['matmul', 'runtime']) {
          const s = performance.now()
          await runs[name]!()
          samples[name]!.push(performance.now() - s)
        }
      const rt = latencyStats(samples.runtime!).p50
      const mm = latencyStats(samples.matmul!).p50
      const ratio = rt / mm
      console.log(
        renderTable(
          ['', 'median ms', 'tokens/s', 'GFLOP/s (linear products)'],
          [
            ['runtime prefill (decoder graph)', rt.toFixed(1), Math.round((tokens * 1000) / rt), ((2 * baseline.macs) / rt / 1e6).toFixed(1)],
            ['onnxruntime MatMul only (same weights)', mm.toFixed(1), Math.round((tokens * 1000) / mm), ((2 * baseline.macs) / mm / 1e6).toFixed(1)],
          ],
        ),
      )
      console.log(`\nruntime / MatMul = ${ratio.toFixed(3)}× (target ≤ ${PREFILL_TARGET}×): ${ratio <= PREFILL_TARGET ? 'met' : 'MISSED'}`)
    } finally {
      await model.release()
      await baseline.release()
    }
  } finally {
    await weights.close()
  }
}

if (only === 'all' || only === 'stories') await stories()
if (only === 'all' || only === 'prefill') await prefill()
