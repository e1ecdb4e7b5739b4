/**
 * Which tensors get quantized. By default, as transformers + bitsandbytes
 * do: the 2-D weights of linear layers inside the repeated blocks (a name
 * with a numeric segment, such as `model.layers.3.mlp.up_proj.weight` or
 * `transformer.h.0.attn.c_attn.weight`); embeddings, `lm_head`, norms and
 * biases are kept. `--include` globs replace that rule; `--exclude` globs
 * then remove tensors from whichever set was chosen. Globs (io/glob.ts) match
 * whole names: `*` any run of characters (dots included), `?` one character,
 * `[…]` a class.
 */
import type {DType} from '../dtype.js'
import {DTYPES} from '../dtype.js'
import {UsageError} from '../errors.js'
import {globToRegExp} from '../io/glob.js'

/** Names that look like embeddings, output heads or norms (kept by default even inside blocks). */
const KEEP_PATTERN = /(^|\.)(embed[^.]*|wte|wpe|lm_head|[^.]*norm[^.]*|ln_[^.]*|ln[0-9]*)(\.|$)/

export interface SelectionOptions {
  /** Globs that replace the default rule. */
  readonly include?: readonly string[]
  /** Globs removed from the selection. */
  readonly exclude?: readonly string[]
}

/** The default rule: a 2-D float `.weight` inside a numbered block, not an embedding, head or norm. */
export function isBlockLinearWeight(name: string, shape: readonly number[], dtype: DType): boolean {
  return shape.length === 2 && DTYPES[dtype].kind === 'float' && name.endsWith('.weight') && /\.\d+\./.test(name) && !KEEP_PATTERN.test(name.slice(0, -'.weight'.length))
}

/** A predicate choosing the tensors to quantize (always 2-D floats). */
export function quantizeSelector(options: SelectionOptions = {}): (name: string, shape: readonly number[], dtype: DType) => boolean {
  const include = options.include?.length ? options.include.map((g) => nameGlob('--include', g)) : undefined
  const exclude = (options.exclude ?? []).map((g) => nameGlob('--exclude', g))
  return (name, shape, dtype) => {
    if (shape.length !== 2 || DTYPES[dtype].kind !== 'float') return false
    const chosen = include ? include.some((re) => re.test(name)) : isBlockLinearWeight(name, shape, dtype)
    return chosen && !exclude.some((re) => re.test(name))
  }
}

/** @throws UsageError BAD_FLAG for a glob with an impossible character class */
function nameGlob(flag: string, glob: string): RegExp {
  try {
    return globToRegExp(glob)
  } catch (error) {
    if (error instanceof RangeError) throw new UsageError('BAD_FLAG', `${flag} "${glob}": ${error.message}`)
    throw error
  }
}
