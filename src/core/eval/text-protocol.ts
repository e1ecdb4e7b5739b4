/**
 * How an evaluation text becomes scored positions (documented in
 * docs/eval.md, "Text protocol"):
 *
 * 1. Documents: the text (UTF-8, CRLF read as LF) is split on blank lines
 *    (a line holding only whitespace); each maximal run of non-blank lines,
 *    joined with `\n`, is one document.
 * 2. Each document is tokenized without special tokens and run from a BOS
 *    token (when the model has one), as its own sequence: every position is
 *    scored, i.e. each document token is predicted from the BOS and the
 *    tokens before it.
 * 3. A document longer than the context `ctx` (BOS included) is cut into
 *    chunks of `ctx` tokens, each starting with BOS, as llama.cpp's
 *    `llama-perplexity` cuts its text: a chunk after the first scores only
 *    its second half (positions `⌊ctx/2⌋ … ctx − 2`), so every scored token
 *    sees at least half a context. Chunks overlap by half so that every
 *    token is still scored exactly once; the first chunk scores all of its
 *    positions (nothing comes before them) and the last chunk ends at the
 *    document's end.
 *
 * Everything here is pure: ids in, sequences out.
 */
import {UsageError} from '../errors.js'

/** The smallest context the chunking works with (a chunk after the first must score at least one position). */
export const MIN_EVAL_CONTEXT = 4

/** One sequence run through a model: its tokens and the positions scored. */
export interface EvalSequence {
  /** Token ids, BOS first when the model has one. */
  readonly tokens: readonly number[]
  /** First scored position: positions `scoreFrom … tokens.length − 2` are scored, position p predicting `tokens[p + 1]`. */
  readonly scoreFrom: number
  /** Index of the document it comes from. */
  readonly document: number
}

/** Positions a sequence scores. */
export function scoredPositions(sequence: EvalSequence): number {
  return Math.max(0, sequence.tokens.length - 1 - sequence.scoreFrom)
}

/**
 * The documents of an evaluation text: maximal runs of non-blank lines,
 * joined with `\n` (a blank line holds only whitespace; CRLF is read as LF).
 */
export function splitDocuments(text: string): string[] {
  const documents: string[] = []
  let current: string[] = []
  for (const line of text.replace(/\r\n?/g, '\n').split('\n')) {
    if (line.trim() === '') {
      if (current.length > 0) documents.push(current.join('\n'))
      current = []
    } else current.push(line)
  }
  if (current.length > 0) documents.push(current.join('\n'))
  return documents
}

/**
 * The sequences of one tokenized document (ids without BOS) for a context
 * of `ctx` tokens: one sequence when `[BOS] + ids` fits, else overlapping
 * chunks scored as the module comment says.
 * @param bos the BOS id, or null when the model has none (then the first token has no prediction)
 * @throws UsageError when `ctx` is below MIN_EVAL_CONTEXT
 */
export function chunkDocument(ids: readonly number[], bos: number | null, ctx: number, document = 0): EvalSequence[] {
  if (!(Number.isSafeInteger(ctx) && ctx >= MIN_EVAL_CONTEXT)) throw new UsageError('EVAL_BAD_CONTEXT', `the context must be an integer of at least ${MIN_EVAL_CONTEXT} tokens (got ${ctx})`)
  const prefix = bos === null ? [] : [bos]
  if (prefix.length + ids.length <= ctx) return [{tokens: [...prefix, ...ids], scoreFrom: 0, document}]
  // chunk position p predicts ids[start + p + 1 − prefix]; the window holds `width` document tokens
  const width = ctx - prefix.length
  const half = Math.floor(ctx / 2)
  const out: EvalSequence[] = [{tokens: [...prefix, ...ids.slice(0, width)], scoreFrom: 0, document}]
  let lastScored = width - 1 // the last document index predicted so far
  while (lastScored < ids.length - 1) {
    const start = Math.min(lastScored + prefix.length - half, ids.length - width)
    out.push({tokens: [...prefix, ...ids.slice(start, start + width)], scoreFrom: lastScored - start + prefix.length, document})
    lastScored = start + width - 1
  }
  return out
}

/** Sequences of a whole text, and what the protocol did, for reports. */
export interface EvalText {
  readonly sequences: readonly EvalSequence[]
  readonly documents: number
  /** Documents cut into more than one chunk. */
  readonly chunkedDocuments: number
  /** Document tokens plus one BOS per document. */
  readonly tokens: number
  /** Scored positions over all sequences. */
  readonly positions: number
}

/**
 * Split, tokenize and chunk a text.
 * @param encode tokenizes one document without special tokens
 * @throws UsageError for a bad `ctx`
 */
export function prepareEvalText(text: string, encode: (document: string) => readonly number[], bos: number | null, ctx: number): EvalText {
  const documents = splitDocuments(text)
  const sequences: EvalSequence[] = []
  let chunked = 0
  let tokens = 0
  documents.forEach((doc, d) => {
    const ids = encode(doc)
    tokens += ids.length + (bos === null ? 0 : 1)
    const parts = chunkDocument(ids, bos, ctx, d).filter((s) => scoredPositions(s) > 0)
    if (parts.length > 1) chunked++
    sequences.push(...parts)
  })
  return {sequences, documents: documents.length, chunkedDocuments: chunked, tokens, positions: sequences.reduce((s, q) => s + scoredPositions(q), 0)}
}
