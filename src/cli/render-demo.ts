/**
 * Human output of `lora demo`: what each step is about to show (a sentence or
 * two, before it runs), what it measured (the same tables the single commands
 * print), and the summary.
 */
import type {DemoReport, DemoStepName, DemoSteps} from '../core/demo/run-demo.js'
import {DEMO_STEPS} from '../core/demo/run-demo.js'
import type {DemoSettings} from '../core/demo/settings.js'
import {DELTA_TO_WEIGHT_RATIO} from '../core/synth/adapters.js'
import {formatBytes} from '../core/units.js'
import {renderBenchTable} from './bench-table.js'
import {renderPackResult} from './render-pack.js'
import {renderQualityTotals} from './render-quality.js'
import {renderSweepTotals} from './render-shared-b.js'
import {renderSynthAdapters, renderSynthBase} from './render-synth.js'
import {renderTable} from './table.js'

const TITLES: Record<DemoStepName, string> = {
  synth: 'synthesize a base and adapters',
  pack: 'pack the adapters into one file',
  compress: 'compress them with a shared B',
  merge: 'merge one adapter and quantize to 4 bits',
  bench: 'benchmark serving',
}

const plural = (n: number, noun: string) => `${n} ${noun}${n === 1 ? '' : 's'}`
const pct = (share: number) => `${(100 * share).toFixed(1)}%`
/** Prose lines of the explanations and the summary. */
const WIDTH = 100

/** Break prose at spaces into lines of at most WIDTH characters (a longer word stays whole); continuation lines get `indent`. */
export function wrap(text: string, indent = ''): string {
  const lines: string[] = []
  let line = ''
  for (const word of text.split(' ')) {
    if (line && line.length + 1 + word.length > WIDTH) {
      lines.push(line)
      line = indent + word
    } else line = line ? `${line} ${word}` : word
  }
  if (line) lines.push(line)
  return lines.join('\n')
}

const list = (items: readonly (string | number)[]) => (items.length <= 1 ? items.join('') : `${items.slice(0, -1).join(', ')} and ${items.at(-1)}`)

export function renderDemoStart(info: {out: string; kept: boolean; settings: DemoSettings; seed: number}): string {
  return [
    wrap('lora demo: the whole toolchain on synthetic data, no downloads. Every figure in the tables below is measured in this run.'),
    info.kept ? `Files go to ${info.out} (kept).` : `Files go to ${info.out}, a temporary folder removed at the end (--out DIR keeps them).`,
  ].join('\n')
}

/** The heading and the explanation printed before a step runs. */
export function explainStep(step: DemoStepName, s: DemoSettings): string {
  const n = DEMO_STEPS.indexOf(step) + 1
  const heading = `\n== ${n}/${DEMO_STEPS.length} ${TITLES[step]} ==`
  const text: Record<DemoStepName, string> = {
    synth:
      `A Llama-style base (hidden ${s.hidden}, intermediate ${s.intermediate}, ${plural(s.layers, 'layer')}, vocabulary ${s.vocab}, ${s.dtype}) and ${s.adapters} LoRA adapters on ${s.targets.join(', ')} with ranks ${s.ranks.join('/')} in turn, each changing the weights it adapts by about ${Math.round(100 * DELTA_TO_WEIGHT_RATIO)}% (‖ΔW‖/‖W‖). ` +
      `${Math.round(100 * s.sharedSubspace)}% of every B is drawn from a basis shared by its module's adapters, as adapters trained on one base tend to be correlated; step 3 exploits that.`,
    pack:
      'To serve many adapters in one batch, each module gets stacked tensors A [S, R, in] and B [S, out, R]: one slot per adapter plus slot 0 for requests without one, every rank zero-padded to the module\'s largest rank R. ' +
      'The padding is the price of a single routed tensor per module.',
    compress:
      'Shared B replaces every adapter\'s B by one basis U [out, K] per module, shared by all adapters, and keeps A\' = Uᵀ·ΔW [K, in] per adapter. ' +
      `First the sweep: bytes and the relative error ‖ΔW − U·A'‖/‖ΔW‖ of every adapter for K = 1, 2, 4, …; then K is chosen as the smallest K whose largest error is ≤ ${s.maxError} and that saves bytes, and the file is written at that K.`,
    merge:
      `The first adapter of rank ${Math.max(...s.ranks)} is merged into the base (W' = W + s·B·A) and the result quantized to ${list(s.schemes)}. ` +
      'Three ways to get a 4-bit model serving this adapter are compared with the exact float64 merge, on the files as written: (a) merge, then quantize; (b) quantize the base and keep the adapter unmerged in 16 bit; (c) merge into an already-quantized base and re-quantize. ' +
      `weight rel_err = ‖Ŵ − W*‖/‖W*‖; delta snr = ‖ΔW‖/‖Ŵ − W*‖; adapter retained = 1 − ‖X(Ŵ − W*)ᵀ‖/‖X·ΔWᵀ‖ over ${s.probeRows} random probe rows (1: the adapter's whole effect survives; 0 or less: it is lost in the rounding noise).`,
    bench:
      `Decode batches of ${s.bench.batch} requests, each routed to its own adapter, timed on onnxruntime's CPU provider (${s.bench.threads} threads) with ${list(s.bench.counts)} adapters loaded. ` +
      `Strategies: base (no adapters: the reference), gather (per-request Gather of A and B, batched MatMul), segment (one product per distinct adapter), shared-b (per-adapter A\', one shared B at the K of step 3), mask (one-hot mask over all slots), merged (the adapter merged into the weights, requests grouped by adapter; ${s.bench.mergedCache} merged copies held, the others merged on demand). ` +
      'The model is the linear work of the base\'s blocks; the adapter stacks are generated with the demo\'s ranks (speed depends on shapes, not values). Every strategy is checked against a float64 reference.',
  }
  return `${heading}\n${wrap(text[step])}\n`
}

/** What a step measured. */
export function renderStep<S extends DemoStepName>(step: S, report: DemoSteps[S]): string {
  switch (step) {
    case 'synth': {
      const r = report as DemoSteps['synth']
      return `${renderSynthBase(r.base)}\n${renderSynthAdapters(r.adapters)}`
    }
    case 'pack': {
      const r = report as DemoSteps['pack']
      const b = r.bytes
      return `${renderPackResult(r.result)}\nof the ${formatBytes(b.file)} file: adapter values ${formatBytes(b.adapter_values)}, rank padding ${formatBytes(b.rank_padding)} (${pct(b.rank_padding_share)}), null slot ${formatBytes(b.null_slot)} (${pct(b.null_slot_share)}), empty slots ${formatBytes(b.empty_slots)} (${pct(b.empty_slots_share)})`
    }
    case 'compress': {
      const r = report as DemoSteps['compress']
      const t = r.result.totals
      return [
        `sweep over ${r.sweep.adapters} adapters, ${r.sweep.sweep[0]?.modules.length ?? 0} modules (${r.sweep.seconds.toFixed(1)} s):`,
        renderSweepTotals(r.sweep),
        '',
        `chosen: K = ${r.choice.K}, ${r.choice.rule}${r.choice.met ? '' : ' (no swept K met the bound)'}`,
        `wrote ${r.result.out} (${formatBytes(r.file_bytes)}): A/B stacks ${formatBytes(t.bytes_before)} → ${formatBytes(t.bytes_after)} (${t.savings_pct.toFixed(1)}% saved), relative error mean ${t.error_mean.toFixed(4)}, max ${t.error_max.toFixed(4)}${t.worst_adapter ? ` (${t.worst_adapter.name} on ${t.worst_adapter.module})` : ''}`,
      ].join('\n')
    }
    case 'merge': {
      const r = report as DemoSteps['merge']
      const reports = r.runs.flatMap((x) => (x.result.report ? [x.result.report] : []))
      return [
        `merged ${r.adapter.name} (r = ${r.adapter.r}) into ${r.runs[0]?.result.merged.length ?? 0} tensors; totals over them:`,
        renderQualityTotals(reports),
        '',
        ...r.runs.map((x) => `wrote ${x.result.out} (${x.result.format}, ${x.scheme} block ${x.result.block_size}, ${formatBytes(x.result.bytes)})`),
      ].join('\n')
    }
    case 'bench': {
      const r = report as DemoSteps['bench']
      return [renderBenchTable(r.report), '', `wrote ${r.json} and ${r.plot}`].join('\n')
    }
    default:
      return ''
  }
}

export function renderDemoSummary(report: DemoReport): string {
  const lines = [
    `\n== summary (${report.seconds.toFixed(1)} s) ==`,
    report.kept ? `Files in ${report.out}:` : `Files were in ${report.out} (removed now; \`lora demo --out DIR\` keeps them):`,
    renderTable(
      ['file', 'size', 'what'],
      report.summary.files.map((f) => [f.name, formatBytes(f.bytes), f.what]),
    ),
    '',
  ]
  DEMO_STEPS.forEach((step, i) => lines.push(wrap(`${i + 1}. ${TITLES[step]} (${report.steps[step].seconds.toFixed(1)} s): ${report.summary.takeaways[step]}.`, '   ')))
  return lines.join('\n')
}
