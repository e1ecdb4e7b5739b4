/**
 * The requests of an end-to-end run: R requests of P prompt tokens and G
 * generated tokens, each asking for one adapter (chosen `distinct`,
 * `uniform`, `zipf:α` or `identical` over the adapters loaded, as
 * `lora bench` chooses them per step), arriving all at once (offline
 * throughput) or as a Poisson process at a rate (online latency); or read
 * from a JSONL trace. Prompts are token ids drawn from the seed (the
 * benchmark needs no tokenizer). Deterministic from the seed.
 */
import {readFile, stat} from 'node:fs/promises'
import {InputError, UsageError, withFileContext} from '../errors.js'
import {sanitizeName} from '../formats/safetensors-header.js'
import {Rng} from '../random.js'
import {Workload, drawSteps} from '../bench/workload.js'

/** One request. */
export interface E2eRequest {
  readonly id: string
  /** Prompt token ids (at least one). */
  readonly prompt: readonly number[]
  /** Tokens to generate (at least one; end-of-sequence tokens do not stop a request). */
  readonly maxTokens: number
  /** The adapter it asks for, or null for the base model alone. */
  readonly adapter: string | null
  /** When it arrives, seconds from the start. */
  readonly arrival: number
}

/** How requests arrive: all at the start, or a Poisson process of `rate` requests per second. */
export type Arrival = {readonly kind: 'offline'} | {readonly kind: 'poisson'; readonly rate: number}

/** What `drawRequests` draws. */
export interface DrawRequestsOptions {
  readonly requests: number
  readonly promptTokens: number
  readonly genTokens: number
  /** Adapter names loaded (slot i + 1 = names[i]). */
  readonly adapters: readonly string[]
  readonly workload: Workload
  /** Share of requests with no adapter, 0…1. */
  readonly baseFraction?: number
  readonly arrival: Arrival
  /** Token ids are drawn from 3…vocab−1 (0–2 are usually special tokens). */
  readonly vocab: number
  readonly seed: number
}

/** The first token id prompts use (0, 1, 2 are unknown/BOS/EOS in Llama vocabularies). */
const FIRST_PROMPT_ID = 3

/** Prompt ids of request `index`, drawn from the seed. */
export function promptIds(seed: number, index: number, length: number, vocab: number): number[] {
  const rng = new Rng(seed, 'e2e-prompt', index)
  const lo = vocab > FIRST_PROMPT_ID ? FIRST_PROMPT_ID : 0
  return Array.from({length}, () => lo + rng.int(vocab - lo))
}

/**
 * Draw the requests (see the module comment). Arrivals: offline all at 0; Poisson
 * at 0 for the first and exponential gaps of mean 1/rate after it.
 * @throws UsageError for counts below 1, no adapters, or a rate that is not positive
 */
export function drawRequests(o: DrawRequestsOptions): E2eRequest[] {
  for (const [flag, v] of [['--requests', o.requests], ['--prompt-tokens', o.promptTokens], ['--gen-tokens', o.genTokens]] as const) {
    if (!(Number.isSafeInteger(v) && v >= 1)) throw new UsageError('BAD_FLAG', `${flag} must be a positive integer (got ${v})`)
  }
  if (o.adapters.length === 0) throw new UsageError('BAD_FLAG', 'no adapters to route requests to')
  if (o.arrival.kind === 'poisson' && !(o.arrival.rate > 0 && Number.isFinite(o.arrival.rate))) throw new UsageError('BAD_FLAG', `--rate must be a positive number of requests per second (got ${o.arrival.rate})`)
  const [step] = drawSteps({workload: o.workload, adapters: o.adapters.length, batch: o.requests, baseFraction: o.baseFraction ?? 0, seed: o.seed, steps: 1})
  const gaps = new Rng(o.seed, 'e2e-arrivals')
  let t = 0
  return Array.from(step!.slots, (slot, i) => {
    if (i > 0 && o.arrival.kind === 'poisson') t += -Math.log(1 - gaps.next()) / o.arrival.rate
    return {id: `r${i}`, prompt: promptIds(o.seed, i, o.promptTokens, o.vocab), maxTokens: o.genTokens, adapter: slot === 0 ? null : o.adapters[slot - 1]!, arrival: o.arrival.kind === 'poisson' ? t : 0}
  })
}

/** A trace larger than this is not a request trace (it is read whole). */
export const MAX_TRACE_BYTES = 64 * 1024 * 1024
/** Requests in one trace at most (each is served and checked against the reference). */
export const MAX_TRACE_REQUESTS = 100_000
/** Prompt and generated tokens per request at most (positions the runtime builds RoPE tables for). */
export const MAX_TRACE_TOKENS = 1 << 17

/**
 * Read a JSONL trace: one request per line, `{"prompt_tokens": P | [ids…],
 * "max_tokens": G, "adapter": "name" | null, "arrival_s": t}` (`arrival_s`
 * defaults to 0; an optional `"id"` names the request). A count of prompt
 * tokens is drawn from the seed like flag-made prompts. Requests are served
 * in order of arrival.
 * @throws InputError naming the file and line of the first bad request
 */
export async function readTrace(path: string, options: {adapters: readonly string[]; vocab: number; seed: number}): Promise<E2eRequest[]> {
  const size = (await withFileContext('read', path, () => stat(path))).size
  if (size > MAX_TRACE_BYTES) throw new InputError('TRACE_TOO_LARGE', `read ${path}: ${size} bytes, more than a request trace may hold (${MAX_TRACE_BYTES})`)
  const text = await withFileContext('read', path, () => readFile(path, 'utf8'))
  const known = new Set(options.adapters)
  const out: E2eRequest[] = []
  const ids = new Set<string>()
  const lines = text.split('\n')
  for (let n = 0; n < lines.length; n++) {
    const line = lines[n]!.trim()
    if (line === '') continue
    const where = `read ${path}: line ${n + 1}`
    if (out.length >= MAX_TRACE_REQUESTS) throw new InputError('TRACE_TOO_LARGE', `${where}: more than ${MAX_TRACE_REQUESTS} requests`)
    let value: unknown
    try {
      value = JSON.parse(line)
    } catch {
      throw new InputError('TRACE_BAD_LINE', `${where}: not a JSON object`)
    }
    if (typeof value !== 'object' || value === null || Array.isArray(value)) throw new InputError('TRACE_BAD_LINE', `${where}: not a JSON object`)
    const r = value as Record<string, unknown>
    const id = r.id === undefined ? `r${out.length}` : typeof r.id === 'string' && r.id.length > 0 && r.id.length <= 200 ? r.id : undefined
    if (id === undefined) throw new InputError('TRACE_BAD_LINE', `${where}: "id" must be a non-empty string of at most 200 characters`)
    if (ids.has(id)) throw new InputError('TRACE_BAD_LINE', `${where}: request id "${sanitizeName(id)}" appears twice`)
    const prompt = promptOf(r.prompt_tokens, where, options, out.length)
    const maxTokens = r.max_tokens
    if (!(typeof maxTokens === 'number' && Number.isSafeInteger(maxTokens) && maxTokens >= 1 && maxTokens <= MAX_TRACE_TOKENS)) {
      throw new InputError('TRACE_BAD_LINE', `${where}: "max_tokens" must be an integer in 1…${MAX_TRACE_TOKENS} (got ${JSON.stringify(maxTokens)})`)
    }
    const adapter = r.adapter ?? null
    if (adapter !== null && (typeof adapter !== 'string' || !known.has(adapter))) {
      throw new InputError('TRACE_UNKNOWN_ADAPTER', `${where}: adapter ${typeof adapter === 'string' ? `"${sanitizeName(adapter)}"` : JSON.stringify(adapter)} is not one of the ${known.size} loaded (${options.adapters.slice(0, 3).join(', ')}${known.size > 3 ? ', …' : ''})`)
    }
    const arrival = r.arrival_s ?? 0
    if (!(typeof arrival === 'number' && Number.isFinite(arrival) && arrival >= 0)) throw new InputError('TRACE_BAD_LINE', `${where}: "arrival_s" must be a number ≥ 0 (got ${JSON.stringify(arrival)})`)
    ids.add(id)
    out.push({id, prompt, maxTokens, adapter, arrival})
  }
  if (out.length === 0) throw new InputError('TRACE_EMPTY', `read ${path}: no requests`)
  return out.map((r, i) => ({r, i})).sort((a, b) => a.r.arrival - b.r.arrival || a.i - b.i).map((x) => x.r)
}

function promptOf(value: unknown, where: string, o: {vocab: number; seed: number}, index: number): number[] {
  if (typeof value === 'number' && Number.isSafeInteger(value) && value >= 1 && value <= MAX_TRACE_TOKENS) return promptIds(o.seed, index, value, o.vocab)
  if (Array.isArray(value) && value.length >= 1 && value.length <= MAX_TRACE_TOKENS) {
    for (const id of value) if (!(typeof id === 'number' && Number.isSafeInteger(id) && id >= 0 && id < o.vocab)) throw new InputError('TRACE_BAD_LINE', `${where}: prompt token ${JSON.stringify(id)} is outside the vocabulary (0…${o.vocab - 1})`)
    return value as number[]
  }
  throw new InputError('TRACE_BAD_LINE', `${where}: "prompt_tokens" must be a count in 1…${MAX_TRACE_TOKENS} or an array of token ids (got ${JSON.stringify(value)?.slice(0, 40)})`)
}
