/**
 * The text protocol on hand-made texts and ids: documents split on blank
 * lines, each run from BOS with every position scored, and long documents
 * cut into chunks scored as llama.cpp scores them (second half of each
 * chunk after the first), every token scored exactly once.
 */
import {suite} from 'uvu'
import * as assert from 'uvu/assert'
import {rejection} from '../../helpers/index.js'
import {EvalSequence, MIN_EVAL_CONTEXT, chunkDocument, prepareEvalText, scoredPositions, splitDocuments} from '../../../src/core/eval/text-protocol.js'

const test = suite('eval/text-protocol')

/** The document tokens each sequence predicts, in order (position p predicts tokens[p + 1]). */
function predicted(sequences: readonly EvalSequence[]): number[] {
  return sequences.flatMap((s) => s.tokens.slice(s.scoreFrom + 1))
}

test('documents are runs of non-blank lines; whitespace-only lines separate; CRLF is LF', () => {
  assert.equal(splitDocuments('a b\nc\n\nd\n'), ['a b\nc', 'd'])
  assert.equal(splitDocuments('\n\n  \nfirst\n \t \nsecond line\r\nstill second\r\n\r\n\r\nthird'), ['first', 'second line\nstill second', 'third'])
  assert.equal(splitDocuments(' \n\t\n'), [])
})

test('a document that fits is one sequence from BOS, every position scored', () => {
  const [s, ...rest] = chunkDocument([10, 11, 12], 1, 8)
  assert.equal(rest, [])
  assert.equal(s!.tokens, [1, 10, 11, 12])
  assert.is(s!.scoreFrom, 0)
  assert.is(scoredPositions(s!), 3) // BOS→10, 10→11, 11→12
  // exactly ctx tokens still fits
  assert.is(chunkDocument([10, 11, 12, 13, 14, 15, 16], 1, 8).length, 1)
})

test('without a BOS the first token starts the sequence and is not predicted', () => {
  const [s] = chunkDocument([10, 11, 12], null, 8)
  assert.equal(s!.tokens, [10, 11, 12])
  assert.equal(predicted([s!]), [11, 12])
})

test('a long document: chunks of ctx tokens from BOS, the later ones scoring their second half, each token once', () => {
  const ids = Array.from({length: 20}, (_, i) => 100 + i)
  const chunks = chunkDocument(ids, 1, 8)
  assert.equal(chunks[0], {tokens: [1, 100, 101, 102, 103, 104, 105, 106], scoreFrom: 0, document: 0})
  assert.equal(chunks[1], {tokens: [1, 103, 104, 105, 106, 107, 108, 109], scoreFrom: 4, document: 0}) // predicts 107, 108, 109
  for (const c of chunks) {
    assert.is(c.tokens.length, 8)
    assert.is(c.tokens[0], 1)
  }
  for (const c of chunks.slice(1)) assert.ok(c.scoreFrom >= 4, `chunk scores from ${c.scoreFrom}, before the second half`)
  assert.equal(chunks.at(-1)!.tokens.at(-1), 119) // the last chunk ends at the document's end
  assert.equal(predicted(chunks), ids)
})

test('every context from the minimum up scores each token exactly once, with and without BOS', () => {
  const ids = Array.from({length: 37}, (_, i) => i + 5)
  for (let ctx = MIN_EVAL_CONTEXT; ctx <= 40; ctx++) {
    assert.equal(predicted(chunkDocument(ids, 2, ctx)), ids, `ctx ${ctx} with BOS`)
    assert.equal(predicted(chunkDocument(ids, null, ctx)), ids.slice(1), `ctx ${ctx} without BOS`)
    for (const c of chunkDocument(ids, 2, ctx)) assert.ok(c.tokens.length <= ctx)
  }
})

test('a context below the minimum is a usage error', async () => {
  const err = await rejection(Promise.resolve().then(() => chunkDocument([1, 2, 3, 4, 5], 1, MIN_EVAL_CONTEXT - 1)))
  assert.is(err.code, 'EVAL_BAD_CONTEXT')
  assert.is(err.exitCode, 2)
})

test('a whole text: documents, tokens (one BOS each), positions, chunked documents', () => {
  const encode = (doc: string) => doc.split(/\s+/).map((w) => w.length + 10)
  const text = 'a bb ccc\n\n' + Array.from({length: 12}, () => 'dddd').join(' ') + '\n'
  const out = prepareEvalText(text, encode, 1, 8)
  assert.is(out.documents, 2)
  assert.is(out.tokens, 3 + 1 + 12 + 1)
  assert.is(out.positions, 3 + 12)
  assert.is(out.chunkedDocuments, 1)
  assert.equal(out.sequences[0], {tokens: [1, 11, 12, 13], scoreFrom: 0, document: 0})
  assert.ok(out.sequences.slice(1).every((s) => s.document === 1))
})

test.run()
