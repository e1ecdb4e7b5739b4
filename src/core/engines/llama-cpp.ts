/**
 * llama.cpp, through `node-llama-cpp`, as an optional peer: `lora` does not
 * install it (about 730 MB with its CUDA and Vulkan builds), finds it at run
 * time where the user installed it, and says in one line how to install it
 * when it is absent. Loaded lazily, so `lora --help` never touches it.
 *
 * What `lora` needs from it is small: load a GGUF model (with GGUF LoRA
 * adapters at given scales) on the CPU, tokenize with the model's own
 * tokenizer, and the full next-token distribution at every position of a
 * token sequence (`LlamaCppSession.nextTokenProbabilities`).
 */
import {createRequire} from 'node:module'
import {existsSync, readFileSync} from 'node:fs'
import {dirname, join, resolve} from 'node:path'
import {fileURLToPath, pathToFileURL} from 'node:url'
import {InputError, UsageError} from '../errors.js'

/** The node-llama-cpp release `lora` is tested with (newer releases' locks fail `npm ci` on Node 20 here). */
export const NODE_LLAMA_CPP_VERSION = '3.21.1'
export const NODE_LLAMA_CPP_PACKAGE = 'node-llama-cpp'
/** The install line every "not installed" message ends with. */
export const NODE_LLAMA_CPP_INSTALL = `npm i -E ${NODE_LLAMA_CPP_PACKAGE}@${NODE_LLAMA_CPP_VERSION}`

// The subset of node-llama-cpp's API `lora` calls, typed structurally (the package is not a build dependency).
interface NlcToken {
  readonly __brand?: 'Token'
}
type Token = number & NlcToken
interface NlcSequence {
  clearHistory(): Promise<void>
  controlledEvaluate(input: Array<[Token, {generateNext: {probabilities: boolean}}]>): Promise<Array<undefined | {next: {probabilities?: Map<Token, number>}}>>
}
interface NlcContext {
  getSequence(): NlcSequence
  dispose(): Promise<void>
}
interface NlcModel {
  readonly tokens: {readonly bos: Token | null; readonly eos: Token | null}
  readonly fileInsights: {readonly trainContextSize?: number}
  tokenize(text: string, specialTokens?: boolean): Token[]
  createContext(options: {contextSize: number; batchSize: number; sequences?: number; lora?: {adapters: Array<{filePath: string; scale?: number}>}}): Promise<NlcContext>
  dispose(): Promise<void>
}
interface NlcLlama {
  loadModel(options: {modelPath: string}): Promise<NlcModel>
  dispose(): Promise<void>
}
/** What `lora` uses of the `node-llama-cpp` module. */
export interface NodeLlamaCpp {
  getLlama(options: {gpu: false; build: 'never'; logLevel?: string; maxThreads?: number}): Promise<NlcLlama>
}

export interface FindLlamaCppOptions {
  /**
   * Folders holding a `node_modules/node-llama-cpp` to try first, in order (the
   * tests' nested package `test/engines`). Then the places Node would resolve it
   * from: `lora`'s own install, and the current directory.
   */
  readonly searchFrom?: readonly string[]
  /** What the engine is needed for, ending the "not installed" line (default: "run GGUF models with llama.cpp"). */
  readonly purpose?: string
}

export interface FoundLlamaCpp {
  readonly module: NodeLlamaCpp
  /** The package folder it was loaded from. */
  readonly packageDir: string
  readonly version: string
}

/** The package folder of node-llama-cpp as resolved from `fromDir`, or undefined. */
function resolvePackageDir(fromDir: string): string | undefined {
  try {
    const entry = createRequire(join(resolve(fromDir), 'noop.js')).resolve(NODE_LLAMA_CPP_PACKAGE)
    let dir = dirname(entry)
    while (!existsSync(join(dir, 'package.json')) || readPackageName(dir) !== NODE_LLAMA_CPP_PACKAGE) {
      const up = dirname(dir)
      if (up === dir) return undefined
      dir = up
    }
    return dir
  } catch {
    return undefined
  }
}

function readPackageName(dir: string): string | undefined {
  try {
    return (JSON.parse(readFileSync(join(dir, 'package.json'), 'utf8')) as {name?: string}).name
  } catch {
    return undefined
  }
}

/** Where node-llama-cpp would be loaded from, without loading it (undefined when it is not installed anywhere we look). */
export function locateLlamaCpp(options: FindLlamaCppOptions = {}): string | undefined {
  const here = dirname(fileURLToPath(import.meta.url))
  for (const from of [...(options.searchFrom ?? []), here, process.cwd()]) {
    const dir = resolvePackageDir(from)
    if (dir) return dir
  }
  return undefined
}

/**
 * Load node-llama-cpp (lazily, once per call site).
 * @throws UsageError ENGINE_NOT_INSTALLED with the install line when it is absent;
 *   ENGINE_VERSION when another release is installed (its API and binaries differ)
 */
export async function loadLlamaCpp(options: FindLlamaCppOptions = {}): Promise<FoundLlamaCpp> {
  const purpose = options.purpose ?? 'run GGUF models with llama.cpp'
  const packageDir = locateLlamaCpp(options)
  if (!packageDir) {
    throw new UsageError('ENGINE_NOT_INSTALLED', `node-llama-cpp is not installed: install node-llama-cpp@${NODE_LLAMA_CPP_VERSION} to ${purpose} (${NODE_LLAMA_CPP_INSTALL})`)
  }
  const pkg = JSON.parse(readFileSync(join(packageDir, 'package.json'), 'utf8')) as {version?: string; exports?: Record<string, unknown>; main?: string}
  if (pkg.version !== NODE_LLAMA_CPP_VERSION) {
    throw new UsageError(
      'ENGINE_VERSION',
      `node-llama-cpp ${pkg.version ?? '(unknown version)'} found at ${packageDir}: lora needs exactly ${NODE_LLAMA_CPP_VERSION} to ${purpose} (${NODE_LLAMA_CPP_INSTALL})`,
    )
  }
  const root = pkg.exports?.['.'] as {import?: string; default?: string} | string | undefined
  const entry = typeof root === 'string' ? root : (root?.import ?? root?.default ?? pkg.main ?? 'index.js')
  const module = (await import(pathToFileURL(join(packageDir, entry)).href)) as NodeLlamaCpp
  return {module, packageDir, version: pkg.version}
}

/** A GGUF model loaded by llama.cpp on the CPU, and the Llama that holds it (dispose of the model, then the Llama). */
export interface LoadedLlamaCppModel<M> {
  readonly llama: {dispose(): Promise<void>}
  readonly model: M
  /** Where node-llama-cpp was loaded from, and its release. */
  readonly engine: {readonly packageDir: string; readonly version: string}
}

/**
 * Load a GGUF model with llama.cpp on the CPU (node-llama-cpp found as
 * `loadLlamaCpp` finds it). `M` is the caller's structural type of
 * node-llama-cpp's `LlamaModel` (the package is not a build dependency).
 * @param options.maxThreads CPU threads llama.cpp may use (absent: node-llama-cpp's choice)
 * @throws UsageError when node-llama-cpp is absent or another release; InputError ENGINE_REFUSED_MODEL naming the file when llama.cpp refuses it
 */
export async function openLlamaCppModel<M = NlcModel>(options: FindLlamaCppOptions & {model: string; maxThreads?: number}): Promise<LoadedLlamaCppModel<M>> {
  const found = await loadLlamaCpp(options)
  const llama = await found.module.getLlama({gpu: false, build: 'never', logLevel: 'error', ...(options.maxThreads !== undefined ? {maxThreads: options.maxThreads} : {})})
  try {
    const model = (await llama.loadModel({modelPath: resolve(options.model)})) as unknown as M
    return {llama, model, engine: {packageDir: found.packageDir, version: found.version}}
  } catch (error) {
    await llama.dispose()
    throw new InputError('ENGINE_REFUSED_MODEL', `llama.cpp could not load ${options.model}: ${(error as Error).message}`, {cause: error})
  }
}

export interface LlamaCppAdapter {
  /** A GGUF LoRA adapter file (`general.type = adapter`). */
  readonly path: string
  /** The scale llama.cpp multiplies the adapter by (default 1). */
  readonly scale?: number
}

export interface OpenLlamaCppOptions extends FindLlamaCppOptions {
  /** A GGUF model file. */
  readonly model: string
  readonly adapters?: readonly LlamaCppAdapter[]
  /** Tokens per sequence the context holds (default 512). */
  readonly contextSize?: number
  /** CPU threads (default: node-llama-cpp's choice). */
  readonly threads?: number
}

/**
 * One llama.cpp model on the CPU, with its adapters applied (llama.cpp
 * applies LoRA per context, so one session has one adapter set).
 */
export class LlamaCppSession {
  private constructor(
    private readonly llama: {dispose(): Promise<void>},
    private readonly model: NlcModel,
    private readonly context: NlcContext,
    private readonly sequence: NlcSequence,
    /** Tokens one evaluation may hold. */
    readonly contextSize: number,
    readonly engine: {readonly packageDir: string; readonly version: string},
  ) {}

  /**
   * Load a GGUF model (and adapters) with llama.cpp.
   * @throws UsageError when node-llama-cpp is absent; InputError naming the file when llama.cpp refuses it
   */
  static async open(options: OpenLlamaCppOptions): Promise<LlamaCppSession> {
    const {llama, model, engine} = await openLlamaCppModel<NlcModel>({...options, maxThreads: options.threads || undefined})
    const contextSize = options.contextSize ?? 512
    let context: NlcContext
    try {
      const adapters = (options.adapters ?? []).map((a) => ({filePath: resolve(a.path), scale: a.scale ?? 1}))
      context = await model.createContext({contextSize, batchSize: contextSize, sequences: 1, ...(adapters.length ? {lora: {adapters}} : {})})
    } catch (error) {
      await model.dispose()
      await llama.dispose()
      const names = (options.adapters ?? []).map((a) => a.path).join(', ')
      throw new InputError('ENGINE_REFUSED_ADAPTER', `llama.cpp could not apply ${names || 'the context'} to ${options.model}: ${(error as Error).message}`, {cause: error})
    }
    return new LlamaCppSession(llama, model, context, context.getSequence(), contextSize, engine)
  }

  /** The model's BOS token id, or undefined when it has none. */
  get bos(): number | undefined {
    return this.model.tokens.bos ?? undefined
  }

  /** Token ids of `text` by the model's own tokenizer (no BOS added; special-token text is not parsed). */
  tokenize(text: string): number[] {
    return this.model.tokenize(text, false).map(Number)
  }

  /**
   * The next-token distribution after each prefix of `ids`: row p is
   * P(token | ids[0..p]) over the whole vocabulary (`vocab` entries; tokens
   * llama.cpp left out have probability 0). The sequence starts empty each call.
   * @throws RangeError when `ids` is longer than the context
   */
  async nextTokenProbabilities(ids: readonly number[], vocab: number): Promise<Float64Array[]> {
    if (ids.length > this.contextSize) throw new RangeError(`${ids.length} tokens do not fit the ${this.contextSize}-token context`)
    await this.sequence.clearHistory()
    const results = await this.sequence.controlledEvaluate(ids.map((t) => [t as Token, {generateNext: {probabilities: true}}]))
    return results.map((r, p) => {
      const probs = r?.next.probabilities
      if (!probs) throw new Error(`llama.cpp returned no distribution at position ${p}`)
      const row = new Float64Array(vocab)
      for (const [token, pr] of probs) {
        if (token >= vocab) throw new RangeError(`llama.cpp returned token ${token}, outside the ${vocab}-token vocabulary`)
        row[token] = pr
      }
      return row
    })
  }

  async close(): Promise<void> {
    await this.context.dispose()
    await this.model.dispose()
    await this.llama.dispose()
  }
}
