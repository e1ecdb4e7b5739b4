import {Flags} from '@oclif/core'
import {LoraCommand} from '../cli/base-command.js'
import {MAX_ADAPTER_WEIGHT, MAX_ROWS, MAX_TEMPERATURE, MAX_THREADS, integer, number, path, seedFlag} from '../cli/flags.js'
import {UsageError} from '../core/errors.js'
import {GenerateTextResult, generateText} from '../core/runtime/generate-text.js'
import type {AdapterRef} from '../core/runtime/load-decoder.js'
import {routedStrategies} from '../core/runtime/routed-deltas.js'

export default class Generate extends LoraCommand {
  static override summary = 'Generate text with a base model, plain or with LoRA adapters, to see that they still behave.'
  static override description =
    'Runs the decoder on onnxruntime (a Hugging Face folder or a GGUF file: F32/F16/BF16, Q8_0 and Q4_0 through MatMulNBits) with the model\'s own tokenizer, streaming tokens to stdout. Adapters are applied unmerged beside the base weights (--merge merges them first); --pack P --adapter NAME takes one adapter out of a lora-pack, or, with --strategy, serves the whole pack stacked and routes the request to that adapter as a multi-adapter server would. Greedy by default; --temperature T samples with --seed S. --json prints the prompt ids, the new ids and the text instead of streaming.'
  static override examples = [
    {command: '<%= config.bin %> generate --base ./stories260K/hf --prompt "Once upon a time"', description: 'Greedy text from a Hugging Face folder.'},
    {command: '<%= config.bin %> generate --base model-q4_0.gguf --adapter ./lora --prompt "Once upon a time" -n 40', description: 'A 4-bit GGUF base with an unmerged PEFT adapter.'},
    {command: '<%= config.bin %> generate --base ./base --pack adapters.lora-pack --adapter customer-17 --prompt "Hi" --temperature 0.8 --seed 3', description: 'One adapter of a pack, sampled.'},
    {command: '<%= config.bin %> generate --base ./base --pack adapters.lora-pack --adapter customer-17 --strategy gather --prompt "Hi"', description: 'The same adapter routed per request out of the stacked pack.'},
  ]
  static override flags = {
    base: path()({description: 'base model: Hugging Face folder or .gguf file', required: true}),
    adapter: Flags.string({description: 'PEFT adapter folder (repeatable), or with --pack the adapter\'s name in the pack', multiple: true}),
    weight: number({min: -MAX_ADAPTER_WEIGHT, max: MAX_ADAPTER_WEIGHT})({description: `weight of each --adapter folder, in order (repeatable; default 1; within ±${MAX_ADAPTER_WEIGHT})`, multiple: true}),
    pack: path()({description: 'a lora-pack file: --adapter names one of its adapters'}),
    strategy: Flags.option({description: 'with --pack: serve the whole pack stacked and route the request to its adapter with this serving strategy (default: read that one adapter and apply it unmerged)', options: routedStrategies()})(),
    merge: Flags.boolean({description: 'merge the adapters into the weights instead of applying them unmerged'}),
    prompt: Flags.string({description: 'the text to continue', required: true}),
    'max-tokens': integer({min: 1, max: MAX_ROWS})({char: 'n', description: 'new tokens at most', default: 60}),
    temperature: number({min: 0, max: MAX_TEMPERATURE})({description: `sampling temperature (0 = greedy; at most ${MAX_TEMPERATURE})`, default: 0}),
    seed: seedFlag('seed of the sampler'),
    threads: integer({min: 1, max: MAX_THREADS})({description: 'onnxruntime intra-op threads'}),
  }

  async run(): Promise<GenerateTextResult> {
    const {flags} = await this.parse(Generate)
    const temperature = flags.temperature
    const names = flags.adapter ?? []
    const weights = flags.weight ?? []
    if (weights.length > 0 && weights.length !== names.length) throw new UsageError('BAD_FLAG', `${weights.length} --weight values for ${names.length} --adapter values (give one weight per adapter, or none)`)
    let adapters: AdapterRef[] = []
    let routed: {pack: string; strategy: string; adapter: string} | undefined
    if (flags.strategy !== undefined && flags.pack === undefined) throw new UsageError('BAD_FLAG', '--strategy routes an adapter of a --pack')
    if (flags.pack !== undefined) {
      if (names.length !== 1) throw new UsageError('BAD_FLAG', `--pack needs exactly one --adapter NAME (got ${names.length})`)
      if (flags.strategy !== undefined && (weights.length > 0 || flags.merge)) throw new UsageError('BAD_FLAG', '--strategy serves the packed adapter as stored: no --weight or --merge')
      if (flags.strategy !== undefined) routed = {pack: flags.pack, strategy: flags.strategy, adapter: names[0]!}
      else adapters = [{pack: flags.pack, name: names[0]!, weight: weights[0]}]
    } else adapters = names.map((path, k) => ({path, weight: weights[k]}))
    const stream = !this.jsonEnabled()
    // the prompt goes out with the first new text, so a failure to load prints nothing on stdout
    let started = false
    const write = (piece: string) => {
      if (!started) process.stdout.write(flags.prompt)
      started = true
      process.stdout.write(piece)
    }
    const result = await generateText({
      base: flags.base,
      adapters,
      routed,
      merge: flags.merge,
      prompt: flags.prompt,
      maxTokens: flags['max-tokens'],
      temperature,
      seed: flags.seed,
      threads: flags.threads,
      onText: stream ? write : undefined,
    })
    if (stream) write('\n')
    return result
  }
}
