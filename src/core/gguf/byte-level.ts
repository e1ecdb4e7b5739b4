/**
 * GPT-2's byte-level alphabet (`bytes_to_unicode` in OpenAI's encoder and
 * Hugging Face's ByteLevel pre-tokenizer): each byte as one printable
 * character, so byte-level BPE tokens are strings of these characters
 * (a space is "Ġ", a newline "Ċ").
 */

let table: string[] | undefined

/** The character standing for each byte 0…255. */
export function byteLevelAlphabet(): readonly string[] {
  if (table) return table
  const printable: number[] = []
  for (let b = 0x21; b <= 0x7e; b++) printable.push(b)
  for (let b = 0xa1; b <= 0xac; b++) printable.push(b)
  for (let b = 0xae; b <= 0xff; b++) printable.push(b)
  const out: string[] = new Array(256)
  for (const b of printable) out[b] = String.fromCodePoint(b)
  let n = 0
  for (let b = 0; b < 256; b++) if (out[b] === undefined) out[b] = String.fromCodePoint(256 + n++)
  table = out
  return out
}

/** The byte-level spelling of a UTF-8 string (what a byte-level BPE vocabulary holds for it). */
export function toByteLevel(text: string): string {
  const alphabet = byteLevelAlphabet()
  let out = ''
  for (const b of new TextEncoder().encode(text)) out += alphabet[b]
  return out
}
