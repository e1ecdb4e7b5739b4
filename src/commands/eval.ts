import {Flags} from '@oclif/core'
import {LoraCommand} from '../cli/base-command.js'
import {MAX_ADAPTER_WEIGHT, MAX_BLOCK_SIZE, MAX_ROWS, MAX_THREADS, integer, number, path} from '../cli/flags.js'
import {createProgressBar} from '../cli/progress-bar.js'
import {EVAL_ENGINES} from '../cli/eval-engines.js'
import {blockSizeHelp} from '../cli/scheme-flags.js'
import {renderEval} from '../cli/render-eval.js'
import {UsageError} from '../core/errors.js'
import {kldGateError} from '../core/eval/kld-gate.js'
import {EvalResult, evaluateVariants} from '../core/eval/run-eval.js'
import {DEFAULT_VARIANTS, parseVariantList, variantNames} from '../core/eval/variants/registry.js'
import type {AdapterRef} from '../core/runtime/load-decoder.js'

export default class Eval extends LoraCommand {
  static override summary = 'Measure what merging and quantizing cost on the model\'s output: perplexity, KL divergence and top-token agreement over real text.'
  static override description =
    'The reference is the base with the adapters applied unmerged, in float32. Each variant is built as it would be written and served (the project\'s own encoders; q4_0 through MatMulNBits) or read back from a file (--variant-file), run over the text and compared with the reference at every position with llama.cpp\'s `llama-perplexity --kl-divergence` metrics: perplexity and its ratio, mean KL divergence with p90/p99/max, same top-1 token %, RMS Δp. adapter_retained_output = 1 − KL(ref‖variant) / KL(ref‖control), the control being the same variant built without the adapters. The text is split into documents on blank lines, each run from BOS with every position scored; documents longer than --ctx are cut into chunks scored as llama.cpp does (second half of each chunk). --max-kld X exits 1 when a variant other than `base` has a mean KL above X (or not a number). docs/eval.md defines every figure and the --json schema.'
  static override examples = [
    {command: '<%= config.bin %> eval --base ./stories260K/hf --adapter ./adapters/lora_medium --text eval.txt', description: 'The default variants: base, merged:f16, and the three quantized kinds for q4_0 and nf4.'},
    {command: '<%= config.bin %> eval --base ./base --adapter ./a --text eval.txt --variants merge-then-quantize:q4_0,quantized-base-unmerged:q4_0 --max-kld 0.05 --json', description: 'Gate CI on two variants.'},
    {command: '<%= config.bin %> eval --base ./base --adapter ./a --text eval.txt --variants base --variant-file merged-q4_0.gguf', description: 'A merged model already written, read back as stored.'},
    {command: '<%= config.bin %> eval --base ./base --adapter ./a --text eval.txt --variants merge-then-quantize:q4_0 --variant-file merged-q4_0.gguf --engine llama.cpp', description: 'The written GGUF computed by llama.cpp too, side by side with onnxruntime.'},
  ]
  static override flags = {
    base: path()({description: 'base model: Hugging Face folder or .gguf file', required: true}),
    adapter: path()({description: 'PEFT adapter folder (repeatable); the reference applies them unmerged', multiple: true}),
    weight: number({min: -MAX_ADAPTER_WEIGHT, max: MAX_ADAPTER_WEIGHT})({description: `weight of each --adapter, in order (repeatable; default 1; within ±${MAX_ADAPTER_WEIGHT})`, multiple: true}),
    text: path()({description: 'evaluation text (UTF-8; documents separated by blank lines)', required: true}),
    variants: Flags.string({description: `comma-separated KIND[:SCHEME] list (default ${DEFAULT_VARIANTS.join(',')}; all: ${variantNames().join(', ')})`}),
    'variant-file': path()({description: 'a model already written (GGUF file or model folder), evaluated as stored (repeatable)', multiple: true}),
    ctx: integer({min: 4, max: MAX_ROWS})({description: 'context in tokens (default: the model\'s, at most 2048)'}),
    'block-size': integer({min: 1, max: MAX_BLOCK_SIZE})({description: `block size of the variants' schemes (${blockSizeHelp('--block-size')}; default each scheme's)`}),
    'group-size': integer({min: 2, max: MAX_BLOCK_SIZE})({description: `group size of the variants' schemes (${blockSizeHelp('--group-size')}; default each scheme's)`}),
    'max-kld': number({min: 0})({description: 'exit 1 when a variant\'s mean KL divergence exceeds X nats (base is not gated)'}),
    engine: Flags.option({description: 'also compute the GGUF variant files with this engine, side by side with onnxruntime (llama.cpp: node-llama-cpp 3.21.1, an optional peer: npm i -E node-llama-cpp@3.21.1)', options: Object.keys(EVAL_ENGINES)})(),
    threads: integer({min: 1, max: MAX_THREADS})({description: 'intra-op threads (onnxruntime, and llama.cpp with --engine)'}),
  }

  async run(): Promise<EvalResult & {error?: unknown}> {
    const {flags} = await this.parse(Eval)
    const paths = flags.adapter ?? []
    const weights = flags.weight ?? []
    if (weights.length > 0 && weights.length !== paths.length) throw new UsageError('BAD_FLAG', `${weights.length} --weight values for ${paths.length} --adapter folders (give one weight per adapter, or none)`)
    const maxKld = flags['max-kld']
    const files = flags['variant-file'] ?? []
    const variants = flags.variants !== undefined ? parseVariantList(flags.variants) : files.length > 0 ? [] : undefined
    const bar = createProgressBar('eval', this.interactive)
    let result: EvalResult
    try {
      result = await evaluateVariants({
        base: flags.base,
        adapters: paths.map((path, k): AdapterRef => ({path, weight: weights[k]})),
        text: flags.text,
        variants,
        variantFiles: files.map((path) => ({path})),
        ctx: flags.ctx,
        blockSize: flags['block-size'],
        groupSize: flags['group-size'],
        maxKld,
        threads: flags.threads,
        engines: flags.engine === undefined ? [] : [EVAL_ENGINES[flags.engine]!()],
        onProgress: bar.onProgress,
      })
    } finally {
      bar.stop()
    }
    const failed = result.gate && !result.gate.passed ? kldGateError(result.gate) : undefined
    if (this.jsonEnabled()) {
      if (failed) process.exitCode = failed.exitCode
      return failed ? {...result, error: failed.toJSON()} : result
    }
    this.log(renderEval(result))
    if (failed) throw failed
    return result
  }
}
