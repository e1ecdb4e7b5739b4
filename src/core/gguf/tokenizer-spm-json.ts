/**
 * A SentencePiece-style tokenizer.json (Llama 2 family: BPE with byte
 * fallback on text whose spaces became "▁") as llama.cpp's `llama`
 * vocabulary.
 *
 * llama.cpp tokenizes such a vocabulary the SentencePiece way: starting from
 * single characters, it repeatedly merges the adjacent pair whose
 * concatenation is the vocabulary token of highest score (leftmost first),
 * then spells leftover characters as `<0xXX>` byte tokens. Hugging Face's BPE
 * merges the pair of lowest merge rank instead. The two agree when a token's
 * score is minus the rank of the merges that make it, provided that
 *   - the merges making one token are consecutive in rank,
 *   - every split of a token into two pieces that can both occur is one of
 *     those merges (else llama.cpp could make a token Hugging Face cannot),
 *   - all 256 byte tokens exist (llama.cpp has no other fallback).
 * Each is checked; a tokenizer failing one is refused. Merged tokens get
 * score −rank; other normal tokens lower scores in id order (as
 * SentencePiece's own); byte, control and unknown tokens 0.
 */
import {join} from 'node:path'
import type {TokenizerFiles, TokenizerJson} from './tokenizer-files.js'
import {GgufVocabulary, TokenType, padVocabulary, tokensById, unfaithful} from './vocabulary.js'

/** SentencePiece's whitespace marker. */
export const SPM_SPACE = '▁'

/** Whether tokenizer.json looks SentencePiece-style (BPE with byte fallback). */
export function isSpmStyle(tj: TokenizerJson): boolean {
  return tj.model.type === 'BPE' && tj.model.byte_fallback === true
}

function node(value: unknown): Record<string, unknown> | undefined {
  return typeof value === 'object' && value !== null && !Array.isArray(value) ? (value as Record<string, unknown>) : undefined
}

/**
 * Whether a space is put before the text (llama.cpp's `add_space_prefix`),
 * from the two shapes Llama 2 tokenizer.json files take: a normalizer
 * `Prepend("▁")` + `Replace(" ", "▁")`, or a `Metaspace` pre-tokenizer that does not split.
 * @throws InputError TOKENIZER_UNSUPPORTED for any other normalization
 */
export function spmSpacePrefix(tj: TokenizerJson, file: string): boolean {
  const normalizer = node(tj.normalizer)
  const pre = node(tj.pre_tokenizer)
  const describe = (v: unknown) => JSON.stringify(v ?? null).slice(0, 160)
  if (normalizer && !pre) {
    const steps = normalizer.type === 'Sequence' ? ((normalizer.normalizers as unknown[]) ?? []).map(node) : [normalizer]
    let prepend = false
    let replace = false
    for (const s of steps) {
      if (s?.type === 'Prepend' && s.prepend === SPM_SPACE && !prepend && !replace) prepend = true
      else if (s?.type === 'Replace' && node(s.pattern)?.String === ' ' && s.content === SPM_SPACE && !replace) replace = true
      else throw unfaithful(file, `normalizer step ${describe(s)} is not one llama.cpp applies`)
    }
    if (!replace) throw unfaithful(file, 'the normalizer does not turn spaces into "▁"')
    return prepend
  }
  if (pre && !normalizer) {
    if (pre.type !== 'Metaspace' || pre.replacement !== SPM_SPACE) throw unfaithful(file, `pre-tokenizer ${describe(pre)} is not a Metaspace("▁")`)
    if (pre.split === true) throw unfaithful(file, 'the Metaspace pre-tokenizer splits the text into words, which llama.cpp does not')
    const scheme = pre.prepend_scheme ?? (pre.add_prefix_space === false ? 'never' : 'always')
    if (scheme !== 'first' && scheme !== 'always' && scheme !== 'never') throw unfaithful(file, `Metaspace prepend_scheme ${describe(scheme)} is unknown`)
    return scheme !== 'never'
  }
  throw unfaithful(file, `normalizer ${describe(tj.normalizer)} with pre-tokenizer ${describe(tj.pre_tokenizer)} is not a SentencePiece-style normalization`)
}

/** Merges as [left, right] pairs. */
export function mergePairs(tj: TokenizerJson, file: string): Array<[string, string]> {
  return (tj.model.merges ?? []).map((m, rank) => {
    if (Array.isArray(m) && m.length === 2 && typeof m[0] === 'string' && typeof m[1] === 'string') return [m[0], m[1]]
    if (typeof m === 'string') {
      const at = m.indexOf(' ', 1)
      if (at > 0 && m.indexOf(' ', at + 1) === -1) return [m.slice(0, at), m.slice(at + 1)]
    }
    throw unfaithful(file, `merge ${rank} (${JSON.stringify(m)}) is not a pair of tokens`)
  })
}

/**
 * Convert a SentencePiece-style tokenizer.json.
 * @param vocabSize the model's vocabulary (rows of the embedding); the tokenizer is padded to it
 * @throws InputError TOKENIZER_UNSUPPORTED (naming the reason and the way out) when llama.cpp would tokenize differently
 */
export function spmFromTokenizerJson(files: TokenizerFiles, vocabSize: number): GgufVocabulary {
  const tj = files.tokenizerJson!
  const file = join(files.folder, 'tokenizer.json')
  const m = tj.model
  if (!isSpmStyle(tj)) throw unfaithful(file, `model ${m.type} without byte fallback is not SentencePiece-style`)
  if (m.continuing_subword_prefix || m.end_of_word_suffix) throw unfaithful(file, 'the BPE model uses a subword prefix or suffix')
  if (m.ignore_merges) throw unfaithful(file, 'the BPE model ignores merges for whole-word tokens')
  if (m.dropout) throw unfaithful(file, `the BPE model has dropout ${m.dropout}`)
  const addSpacePrefix = spmSpacePrefix(tj, file)
  const byId = tokensById(m.vocab ?? {}, file)
  const added = new Map<number, {content: string; special: boolean}>()
  for (const t of tj.added_tokens ?? []) {
    const existing = byId[t.id]
    if (existing !== undefined && existing !== t.content) throw unfaithful(file, `added token ${t.id} ${JSON.stringify(t.content)} replaces vocabulary token ${JSON.stringify(existing)}`)
    byId[t.id] = t.content
    added.set(t.id, {content: t.content, special: t.special})
  }
  for (let id = 0; id < byId.length; id++) if (byId[id] === undefined) throw unfaithful(file, `token id ${id} is missing (ids are not dense)`)
  const tokens = byId as string[]
  const ids = new Map(tokens.map((t, id) => [t, id]))
  for (let b = 0; b < 256; b++) {
    const name = `<0x${b.toString(16).toUpperCase().padStart(2, '0')}>`
    if (!ids.has(name)) throw unfaithful(file, `byte token ${name} is missing (llama.cpp spells unknown characters with byte tokens only)`)
  }
  // ranks of the merges making each token, checked consecutive
  const pairs = mergePairs(tj, file)
  const firstRank = new Map<string, number>()
  const lastRank = new Map<string, number>()
  const mergeSet = new Set<string>()
  for (const [rank, [l, r]] of pairs.entries()) {
    const t = l + r
    if (!ids.has(l) || !ids.has(r) || !ids.has(t)) throw unfaithful(file, `merge ${rank} ("${l} ${r}") names a token that is not in the vocabulary`)
    if (firstRank.has(t) && lastRank.get(t) !== rank - 1) {
      throw unfaithful(file, `the merges making ${JSON.stringify(t)} are not consecutive (ranks ${firstRank.get(t)} and ${rank}), so no single score orders them`)
    }
    if (!firstRank.has(t)) firstRank.set(t, rank)
    lastRank.set(t, rank)
    mergeSet.add(`${l}\u0000${r}`)
  }
  // every split llama.cpp could merge must be a Hugging Face merge
  const isByte = (t: string) => /^<0x[0-9A-F]{2}>$/.test(t)
  const unk = m.unk_token ?? undefined
  for (const [id, t] of tokens.entries()) {
    if (isByte(t) || added.get(id)?.special) continue
    const chars = Array.from(t)
    for (let k = 1; k < chars.length; k++) {
      const l = chars.slice(0, k).join('')
      const r = chars.slice(k).join('')
      const lPossible = ids.has(l) || k === 1
      const rPossible = ids.has(r) || k === chars.length - 1
      if (lPossible && rPossible && !mergeSet.has(`${l}\u0000${r}`)) {
        throw unfaithful(file, `llama.cpp would merge "${l}" + "${r}" into ${JSON.stringify(t)} (id ${id}), a merge the tokenizer does not have`)
      }
    }
  }
  const types: number[] = []
  const scores: number[] = []
  let lower = pairs.length
  for (const [id, t] of tokens.entries()) {
    const a = added.get(id)
    if (t === unk) types.push(TokenType.UNKNOWN)
    else if (a?.special) types.push(TokenType.CONTROL)
    else if (a) types.push(TokenType.USER_DEFINED)
    else if (isByte(t)) types.push(TokenType.BYTE)
    else types.push(TokenType.NORMAL)
    const type = types[id]!
    const rank = firstRank.get(t)
    scores.push(rank !== undefined ? -rank : type === TokenType.NORMAL || type === TokenType.USER_DEFINED ? -lower++ : 0)
  }
  padVocabulary(tokens, types, scores, vocabSize, file)
  return {model: 'llama', pre: 'default', tokens, scores, types, addSpacePrefix, source: file}
}
