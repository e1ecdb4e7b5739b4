/**
 * llama.cpp (node-llama-cpp 3.21.1) in the tests: the nested package in
 * test/engines (installed by scripts/install-engines.mjs, which `npm test`
 * runs first), the stories260K fixture, and next-token distributions of a
 * GGUF (+ GGUF LoRA adapters) for given token ids.
 *
 * Where the engine is absent the suites skip with the reason (`skipIf`); with
 * LORA_REQUIRE_ENGINES=1 (set by .ci/run) an absent engine fails instead.
 */
import {existsSync, readFileSync} from 'node:fs'
import {join, resolve} from 'node:path'
import {LlamaCppAdapter, LlamaCppSession, NODE_LLAMA_CPP_VERSION, locateLlamaCpp} from '../../src/core/engines/llama-cpp.js'
import {REPO_ROOT} from './index.js'
import {argmax, klDivergenceProbs} from './llama-reference.js'

/** The nested package holding node-llama-cpp for the tests. */
export const ENGINES_DIR = join(REPO_ROOT, 'test/engines')
/** stories260K (real trained Llama model, HF folder + llama.cpp's own GGUF), read in place. */
export const STORIES = resolve(REPO_ROOT, '../shared/real-models/stories260K')

/**
 * Why the llama.cpp tests cannot run here (node-llama-cpp or stories260K absent), or undefined when they can;
 * for `skipIf(test, llamaCppMissing())`.
 * @throws Error when LORA_REQUIRE_ENGINES=1 and the engine is missing (CI must run these tests)
 */
export function llamaCppMissing(needStories = true): string | undefined {
  if (!locateLlamaCpp({searchFrom: [ENGINES_DIR]})) {
    const reason = `node-llama-cpp@${NODE_LLAMA_CPP_VERSION} is not installed in ${ENGINES_DIR} (run: node scripts/install-engines.mjs)`
    if (process.env.LORA_REQUIRE_ENGINES === '1') throw new Error(`${reason}; LORA_REQUIRE_ENGINES=1 forbids skipping the engine tests`)
    return reason
  }
  if (needStories && !existsSync(join(STORIES, 'hf/config.json'))) return `${STORIES} is absent`
  return undefined
}

/** Load a GGUF (and adapters) with the tests' node-llama-cpp. */
export function openLlama(model: string, adapters: readonly LlamaCppAdapter[] = [], contextSize = 512): Promise<LlamaCppSession> {
  // one thread: llama.cpp's worker threads spin-wait, and on a shared 2-core machine two of them can stall each other for minutes
  return LlamaCppSession.open({model, adapters, contextSize, threads: 1, searchFrom: [ENGINES_DIR]})
}

/** The stories of eval.txt (separated by blank lines). */
export function evalStories(): string[] {
  return readFileSync(join(STORIES, 'eval.txt'), 'utf8')
    .split(/\n\s*\n/)
    .map((s) => s.trim())
    .filter(Boolean)
}

let cachedIds: number[][] | undefined

/** Stories of eval.txt that the secondary engine checks score (about 750 of its 3,008 positions); the headline checks score all. */
export const SECONDARY_STORIES = 2

/**
 * Token ids of each eval.txt story, BOS first, by llama.cpp's own tokenizer on
 * llama.cpp's own stories260K GGUF (faithful to the model's SentencePiece vocabulary).
 * @param stories only the first this many stories (all when absent)
 */
export async function evalTokenIds(stories?: number): Promise<number[][]> {
  if (!cachedIds) {
    const session = await openLlama(join(STORIES, 'gguf/stories260K.gguf'))
    try {
      cachedIds = evalStories().map((s) => [session.bos!, ...session.tokenize(s)])
    } finally {
      await session.close()
    }
  }
  return stories === undefined ? cachedIds : cachedIds.slice(0, stories)
}

/** llama.cpp's next-token probabilities for each sequence (one row per position). */
export async function engineDistributions(model: string, sequences: readonly number[][], vocab: number, adapters: readonly LlamaCppAdapter[] = []): Promise<Float64Array[][]> {
  const session = await openLlama(model, adapters)
  try {
    const out: Float64Array[][] = []
    for (const ids of sequences) out.push(await session.nextTokenProbabilities(ids, vocab))
    return out
  } finally {
    await session.close()
  }
}

/** Softmax of a logits row, in float64. */
export function softmax(logits: ArrayLike<number>): Float64Array {
  let max = -Infinity
  for (let i = 0; i < logits.length; i++) max = Math.max(max, logits[i]!)
  const out = new Float64Array(logits.length)
  let sum = 0
  for (let i = 0; i < logits.length; i++) sum += out[i] = Math.exp(logits[i]! - max)
  for (let i = 0; i < out.length; i++) out[i]! /= sum
  return out
}

export interface Agreement {
  /** Mean KL(P ‖ Q) over all positions, nats. */
  readonly meanKl: number
  /** Share of positions whose most likely token is the same. */
  readonly top1: number
  readonly positions: number
}

/** Mean KL(P ‖ Q) and top-1 agreement between two sets of distributions (probability rows). */
export function agreement(p: readonly Float64Array[][], q: readonly Float64Array[][]): Agreement {
  let kl = 0
  let same = 0
  let n = 0
  for (let s = 0; s < p.length; s++)
    for (let i = 0; i < p[s]!.length; i++) {
      kl += klDivergenceProbs(p[s]![i]!, q[s]![i]!)
      if (argmax(p[s]![i]!) === argmax(q[s]![i]!)) same++
      n++
    }
  return {meanKl: kl / n, top1: same / n, positions: n}
}
