/**
 * llama.cpp (node-llama-cpp 3.21.1) serving a batch of requests the way
 * `llama-server` does: one model, one context with a fixed number of
 * sequences (llama-server's slots), every queued sequence's tokens evaluated
 * in one `llama_decode` batch, greedy decoding, and a LoRA adapter set that
 * belongs to the context, not to a sequence. llama-server loads its adapters
 * at start-up and, before each batch, sets the adapter set of the slots it
 * batches (`common_set_adapter_lora`, i.e. `llama_set_adapters_lora`); slots
 * asking for another adapter wait (`server_slot::can_batch_with`). Here the
 * same call is `LlamaCppBatch.useAdapter`.
 *
 * node-llama-cpp applies adapters when a context is created; switching them
 * on a live context is its internal `LlamaContext._setLoras` (which calls
 * `llama_set_adapters_lora`), and loading one without applying it is
 * `LlamaModel._getOrLoadLora`. Both exist in the pinned 3.21.1 (checked at
 * open: another release is refused by `loadLlamaCpp`, and a missing method is
 * named in the error).
 */
import {resolve} from 'node:path'
import {InputError} from '../errors.js'
import {FindLlamaCppOptions, openLlamaCppModel} from './llama-cpp.js'

// The subset of node-llama-cpp's API used here, typed structurally (the package is not a build dependency).
type NextToken = {next: {token?: number | null}}
type EvaluateItem = number | [number, {generateNext: {token: true}}]
interface BatchSequence {
  readonly contextTokens: readonly number[]
  clearHistory(): Promise<void>
  controlledEvaluate(input: EvaluateItem[]): Promise<Array<NextToken | undefined>>
}
interface BatchContext {
  readonly contextSize: number
  getSequence(): BatchSequence
  dispose(): Promise<void>
  _setLoras?(loras: Array<{filePath: string; scale?: number}>): Promise<void>
}
interface BatchModel {
  createContext(options: {contextSize: number; batchSize: number; sequences: number; threads: number}): Promise<BatchContext>
  dispose(): Promise<void>
  _getOrLoadLora?(filePath: string): Promise<unknown>
}
/** What `LlamaCppModel.open` needs. */
export interface OpenLlamaCppModelOptions extends FindLlamaCppOptions {
  /** A GGUF model file. */
  readonly model: string
  /** CPU threads llama.cpp may use (passed explicitly: its worker threads spin-wait, and more threads than cores stall). */
  readonly threads: number
}

/** A GGUF model loaded by llama.cpp on the CPU, with LoRA adapters loaded beside it (not applied). */
export class LlamaCppModel {
  private readonly loaded = new Set<string>()

  private constructor(
    private readonly llama: {dispose(): Promise<void>},
    private readonly model: BatchModel,
    readonly threads: number,
    readonly engine: {readonly packageDir: string; readonly version: string},
  ) {}

  /**
   * Load a GGUF model with llama.cpp.
   * @throws UsageError when node-llama-cpp is absent or another release; InputError naming the file when llama.cpp refuses it
   */
  static async open(options: OpenLlamaCppModelOptions): Promise<LlamaCppModel> {
    const {llama, model, engine} = await openLlamaCppModel<BatchModel>({...options, maxThreads: options.threads})
    if (typeof model._getOrLoadLora !== 'function') {
      await model.dispose()
      await llama.dispose()
      throw new InputError('ENGINE_REFUSED_MODEL', `node-llama-cpp ${engine.version} at ${engine.packageDir} has no LlamaModel._getOrLoadLora: lora needs it to load adapters without applying them`)
    }
    return new LlamaCppModel(llama, model, options.threads, engine)
  }

  /**
   * Load a GGUF LoRA adapter into memory without applying it (llama-server's `--lora` at start-up).
   * @throws InputError naming the file when llama.cpp refuses it
   */
  async loadAdapter(path: string): Promise<void> {
    const file = resolve(path)
    if (this.loaded.has(file)) return
    try {
      await this.model._getOrLoadLora!(file)
    } catch (error) {
      throw new InputError('ENGINE_REFUSED_ADAPTER', `llama.cpp could not load the adapter ${path}: ${(error as Error).message}`, {cause: error})
    }
    this.loaded.add(file)
  }

  /**
   * A context of `sequences` slots of `contextSize` tokens each.
   * @param batchSize tokens one `llama_decode` takes at most (more are split over several)
   */
  async createBatch(options: {sequences: number; contextSize: number; batchSize: number}): Promise<LlamaCppBatch> {
    const context = await this.model.createContext({contextSize: options.contextSize, batchSize: options.batchSize, sequences: options.sequences, threads: this.threads})
    if (typeof context._setLoras !== 'function') {
      await context.dispose()
      throw new InputError('ENGINE_REFUSED_ADAPTER', `node-llama-cpp ${this.engine.version} has no LlamaContext._setLoras: lora needs it to switch adapters between batches`)
    }
    const sequences = Array.from({length: options.sequences}, () => context.getSequence())
    return new LlamaCppBatch(context, sequences)
  }

  async close(): Promise<void> {
    await this.model.dispose()
    await this.llama.dispose()
  }
}

/** One item of a batch: a slot and the tokens to append to it. */
export interface BatchItem {
  readonly slot: number
  readonly tokens: readonly number[]
}

/** A llama.cpp context with a fixed number of slots, evaluated batch by batch (see the module comment). */
export class LlamaCppBatch {
  private readonly free: number[]
  /** Slots released with a history still in the KV cache. */
  private readonly dirty = new Set<number>()
  private adapter: string | null = null
  /** Times the context's adapter set changed. */
  switches = 0

  constructor(
    private readonly context: BatchContext,
    private readonly sequences: readonly BatchSequence[],
  ) {
    this.free = sequences.map((_, i) => i)
  }

  /** Slots in the context. */
  get slots(): number {
    return this.sequences.length
  }

  /** Tokens a slot holds. */
  positions(slot: number): number {
    return this.sequences[slot]!.contextTokens.length
  }

  /**
   * Apply this adapter file (at scale 1) to the context, or none; nothing happens when it is already the one applied.
   * @throws InputError when llama.cpp refuses the adapter
   */
  async useAdapter(path: string | null): Promise<void> {
    const file = path === null ? null : resolve(path)
    if (file === this.adapter) return
    try {
      await this.context._setLoras!(file === null ? [] : [{filePath: file, scale: 1}])
    } catch (error) {
      throw new InputError('ENGINE_REFUSED_ADAPTER', `llama.cpp could not apply the adapter ${path}: ${(error as Error).message}`, {cause: error})
    }
    this.adapter = file
    this.switches++
  }

  /**
   * A free slot, its history cleared.
   * @throws RangeError when every slot is taken
   */
  async acquire(): Promise<number> {
    const slot = this.free.shift()
    if (slot === undefined) throw new RangeError(`all ${this.sequences.length} llama.cpp slots are taken`)
    if (this.dirty.delete(slot)) await this.sequences[slot]!.clearHistory()
    return slot
  }

  /** Give a slot back (its history is cleared when it is next acquired, as llama-server clears a slot for a new prompt). */
  release(slot: number): void {
    this.dirty.add(slot)
    this.free.push(slot)
  }

  /**
   * Append each item's tokens to its slot, all in one batch (node-llama-cpp
   * gathers the sequences queued in one cycle into one `llama_decode`, split
   * only past the batch size), and return each slot's next token, greedy.
   */
  async evaluate(items: readonly BatchItem[]): Promise<number[]> {
    const runs = items.map(async ({slot, tokens}) => {
      const last = tokens.length - 1
      const out = await this.sequences[slot]!.controlledEvaluate(tokens.map((t, i): EvaluateItem => (i === last ? [t, {generateNext: {token: true}}] : t)))
      const next = out[last]?.next.token
      if (next === undefined || next === null) throw new Error(`llama.cpp generated no token for slot ${slot}`)
      return next
    })
    return Promise.all(runs)
  }

  async close(): Promise<void> {
    await this.context.dispose()
  }
}
