import {Flags} from '@oclif/core'
import {LoraCommand} from '../cli/base-command.js'
import {MAX_ADAPTER_WEIGHT, MAX_BLOCK_SIZE, MAX_ROWS, integer, number, path, seedFlag} from '../cli/flags.js'
import {createProgressBar} from '../cli/progress-bar.js'
import {renderEval} from '../cli/render-eval.js'
import {renderQuality} from '../cli/render-quality.js'
import {parseFloatDType} from '../core/dtype.js'
import {UsageError} from '../core/errors.js'
import {kldGateError} from '../core/eval/kld-gate.js'
import {evaluateMergeOutput} from '../core/eval/merge-eval.js'
import {EvalResult, readEvalText} from '../core/eval/run-eval.js'
import {MergeResult, gateError, mergeModel} from '../core/merge/merge-model.js'
import {QUANT_SCHEMES, QUANT_SCHEME_NAMES} from '../core/quant/schemes.js'
import {encodingThreads, encodingThreadsFlag, schemesSizedBy, schemesStoredAs} from '../cli/scheme-flags.js'
import {formatBytes} from '../core/units.js'

export default class Merge extends LoraCommand {
  static override summary = 'Merge LoRA adapters into a base model, optionally quantized (--quantize), and measure how much of each adapter survives.'
  static override description =
    "W' = W + Σ w_k · s_k · B_k A_k, transposed where the base stores [in, out] (GPT-2's Conv1D: decided from the base tensor's shape, not the adapter's fan_in_fan_out flag), computed in float32 and written in --dtype (default: the base's). --quantize merges then quantizes; --from-quantized decodes a quantized base written by `lora quantize`, merges and re-quantizes. The quality report compares, per merged tensor, merge-then-quantize, a quantized base with the adapter unmerged, and re-quantizing a quantized base, measured on the files as written. --max-loss X exits 1 when a tensor keeps less than 1 − X of its adapter."
  static override examples = [
    {command: '<%= config.bin %> merge --base ./base --adapter ./ad/adapter-0000 --out ./merged', description: 'Merge one adapter, keep the base dtype.'},
    {command: '<%= config.bin %> merge --base ./base --adapter ./a --weight 0.7 --adapter ./b --weight 0.3 --out ./merged --dtype f16', description: 'A weighted sum of two adapters.'},
    {command: '<%= config.bin %> merge --base ./base --adapter ./a --out ./merged-nf4 --quantize nf4 --report quality.json --max-loss 0.5', description: 'Merge, quantize to NF4 and gate on the quality lost.'},
    {command: '<%= config.bin %> merge --base base-q4_0.gguf --from-quantized --adapter ./a --out merged-q4_0.gguf', description: 'Merge into a Q4_0 GGUF base and re-quantize.'},
    {command: '<%= config.bin %> merge --base model-f16.gguf --adapter ./a --out merged-f16.gguf', description: 'Merge into a llama.cpp GGUF base; a float GGUF llama.cpp loads.'},
    {command: '<%= config.bin %> merge --base ./base --adapter ./a --out ./merged-nf4 --quantize nf4 --eval eval.txt --max-kld 0.1', description: 'Also measure the written model on real text (lora eval\'s table) and gate on its KL divergence.'},
  ]
  static override flags = {
    base: path()({description: 'base model: folder, .safetensors, index, or a llama.cpp .gguf (F32/F16/BF16/Q8_0; Q4_0 with --from-quantized)', required: true}),
    adapter: path()({description: 'PEFT adapter folder (repeatable)', required: true, multiple: true}),
    weight: number({min: -MAX_ADAPTER_WEIGHT, max: MAX_ADAPTER_WEIGHT})({description: `weight w_k of each adapter, in --adapter order (repeatable; default 1; within ±${MAX_ADAPTER_WEIGHT})`, multiple: true}),
    out: path()({description: `output folder, or a .gguf file llama.cpp loads (${schemesStoredAs('gguf').join(', ')}, or float F16/--dtype without --quantize)`, required: true}),
    dtype: Flags.option({description: 'dtype of written float tensors (default: the base tensor\'s)', options: ['f32', 'f16', 'bf16'] as const})(),
    quantize: Flags.option({description: 'quantize the merged model', options: QUANT_SCHEME_NAMES})(),
    'block-size': integer({min: 1, max: MAX_BLOCK_SIZE})({description: `${schemesSizedBy('--block-size').join('/')} block size`, exclusive: ['group-size']}),
    'group-size': integer({min: 2, max: MAX_BLOCK_SIZE})({description: `${schemesSizedBy('--group-size').join('/')} group size`, exclusive: ['block-size']}),
    'double-quant': Flags.boolean({description: 'nf4: quantize the absmax values too'}),
    'from-quantized': Flags.boolean({description: 'the base is quantized (a `lora quantize` output): decode, merge, re-quantize'}),
    include: Flags.string({description: 'with --quantize: quantize tensors matching this glob instead of the default rule (repeatable)', multiple: true}),
    exclude: Flags.string({description: 'with --quantize: never quantize tensors matching this glob (repeatable)', multiple: true}),
    report: path()({description: 'also write the quality report (JSON) to this file'}),
    'max-loss': number({min: 0, max: 1})({description: 'exit 1 when a merged tensor\'s adapter_retained falls below 1 − X (0 ≤ X ≤ 1)'}),
    probe: integer({min: 1, max: MAX_ROWS})({description: 'probe rows drawn from N(0, 1) for adapter_retained', default: 256}),
    'probe-file': path()({description: 'safetensors file of real activations [N, in], one tensor per merged module'}),
    seed: seedFlag('seed of the probe rows'),
    quality: Flags.boolean({description: 'measure the quality report (--no-quality skips it)', default: true, allowNo: true}),
    force: Flags.boolean({description: 'replace an existing output'}),
    eval: path()({description: 'also evaluate the written model on this text (`lora eval`\'s table: perplexity, KL divergence, top-1 agreement against the base + adapters unmerged)'}),
    'max-kld': number({min: 0})({description: 'with --eval: exit 1 when the written model\'s mean KL divergence exceeds X nats'}),
    threads: encodingThreadsFlag,
  }

  async run(): Promise<MergeResult & {eval?: EvalResult; error?: unknown}> {
    const {flags} = await this.parse(Merge)
    const weights = flags.weight ?? []
    if (weights.length > 0 && weights.length !== flags.adapter.length) {
      throw new UsageError('BAD_FLAG', `${weights.length} --weight values for ${flags.adapter.length} --adapter folders (give one weight per adapter, or none)`)
    }
    const maxLoss = flags['max-loss']
    if (flags['group-size'] !== undefined && (flags.quantize === undefined || QUANT_SCHEMES[flags.quantize].blockSizeFlag !== '--group-size') && !flags['from-quantized']) {
      throw new UsageError('BAD_FLAG', `--group-size applies to --quantize ${schemesSizedBy('--group-size').join(', ')}`)
    }
    const maxKld = flags['max-kld']
    if (maxKld !== undefined && flags.eval === undefined) throw new UsageError('BAD_FLAG', `--max-kld needs --eval (got --max-kld ${maxKld} alone)`)
    if (flags.eval !== undefined) await readEvalText(flags.eval) // a bad text fails before the merge, not after
    const bar = createProgressBar('merge', this.interactive)
    let result: MergeResult
    try {
      result = await mergeModel({
        base: flags.base,
        adapters: flags.adapter.map((path, k) => ({path, weight: weights[k]})),
        out: flags.out,
        dtype: flags.dtype === undefined ? undefined : parseFloatDType(flags.dtype),
        quantize: flags.quantize,
        blockSize: flags['block-size'] ?? flags['group-size'],
        doubleQuant: flags['double-quant'] || undefined,
        fromQuantized: flags['from-quantized'],
        include: flags.include,
        exclude: flags.exclude,
        quality: flags.quality ? {rows: flags.probe, seed: flags.seed, file: flags['probe-file']} : false,
        maxLoss,
        reportPath: flags.report,
        force: flags.force,
        threads: encodingThreads(flags.threads),
        onProgress: bar.onProgress,
        onWarning: (m) => this.warnUser(m),
      })
    } finally {
      bar.stop()
    }
    let evaluated: EvalResult | undefined
    if (flags.eval !== undefined) {
      const evalBar = createProgressBar('eval', this.interactive)
      try {
        evaluated = await evaluateMergeOutput({
          base: flags.base,
          adapters: result.adapters,
          out: result.out,
          text: flags.eval,
          quantize: result.quantize,
          blockSize: result.block_size ?? undefined,
          dtype: flags.dtype,
          fromQuantized: result.from_quantized,
          maxKld,
          onProgress: evalBar.onProgress,
        })
      } finally {
        evalBar.stop()
      }
    }
    const failed = result.gate && !result.gate.passed ? gateError(result.gate) : evaluated?.gate && !evaluated.gate.passed ? kldGateError(evaluated.gate) : undefined
    if (this.jsonEnabled()) {
      if (failed) process.exitCode = failed.exitCode
      const withEval = evaluated ? {...result, eval: evaluated} : result
      return failed ? {...withEval, error: failed.toJSON()} : withEval
    }
    this.log(
      `merged ${result.merged.length} tensors from ${result.adapters.length} adapter${result.adapters.length === 1 ? '' : 's'} into ${result.out} (${result.format}${result.quantize ? `, ${result.quantize} block ${result.block_size}` : `, ${result.dtype}`}, ${formatBytes(result.bytes)})`,
    )
    if (result.report) this.log(`\n${renderQuality(result.report)}`)
    if (evaluated) this.log(`\noutput on ${flags.eval}:\n${renderEval(evaluated)}`)
    if (flags.report) this.log(`\nreport: ${flags.report}`)
    if (failed) throw failed
    return result
  }
}
