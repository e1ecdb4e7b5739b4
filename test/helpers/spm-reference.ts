/**
 * An independent SentencePiece-BPE encoder written from llama.cpp's
 * `llm_tokenizer_spm` (no code shared with src/ or the tokenizer library):
 * a space is prepended and spaces become ▁; the text is split into
 * characters; repeatedly the adjacent pair whose concatenation is a token of
 * highest score is merged (the leftmost on ties); each final piece is its
 * token, or its UTF-8 bytes as `<0xXX>` tokens when it is none (byte fallback).
 */

export function spmEncode(text: string, tokens: readonly string[], scores: readonly number[], bos: number | undefined): number[] {
  const ids = new Map<string, number>()
  tokens.forEach((t, i) => {
    if (!ids.has(t)) ids.set(t, i)
  })
  const pieces = [...('▁' + text.replace(/ /g, '▁'))]
  for (;;) {
    let best = -1
    let bestScore = -Infinity
    for (let i = 0; i + 1 < pieces.length; i++) {
      const id = ids.get(pieces[i]! + pieces[i + 1]!)
      if (id !== undefined && scores[id]! > bestScore) {
        best = i
        bestScore = scores[id]!
      }
    }
    if (best < 0) break
    pieces.splice(best, 2, pieces[best]! + pieces[best + 1]!)
  }
  const out = bos === undefined ? [] : [bos]
  for (const p of pieces) {
    const id = ids.get(p)
    if (id !== undefined) out.push(id)
    else for (const byte of Buffer.from(p, 'utf8')) out.push(ids.get(`<0x${byte.toString(16).toUpperCase().padStart(2, '0')}>`)!)
  }
  return out
}
