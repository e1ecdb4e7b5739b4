/**
 * The variant table of `lora eval`, in table order (the order of reports),
 * and parsing of `KIND[:SCHEME]` lists. Adding a kind: one file in this
 * folder implementing `VariantKind`, one line here.
 */
import {UsageError} from '../../errors.js'
import {base} from './base.js'
import {mergeThenQuantize} from './merge-then-quantize.js'
import {merged} from './merged.js'
import {quantizedBaseUnmerged} from './quantized-base-unmerged.js'
import {requantize} from './requantize.js'
import {variantFile} from './variant-file.js'
import type {VariantKind} from './variant-kind.js'

/** Every kind, in table order. */
export const VARIANT_KINDS: readonly VariantKind[] = Object.freeze([base, merged, mergeThenQuantize, quantizedBaseUnmerged, requantize, variantFile])

const BY_NAME: ReadonlyMap<string, VariantKind> = new Map(VARIANT_KINDS.map((k) => [k.name, k]))

/** A variant asked for: its kind and scheme (the path, for a file). */
export interface VariantRequest {
  readonly kind: string
  readonly scheme: string | null
}

/** The variants evaluated when `--variants` is not given. */
export const DEFAULT_VARIANTS = Object.freeze([
  'base',
  'merged:f16',
  'merge-then-quantize:q4_0',
  'quantized-base-unmerged:q4_0',
  'requantize:q4_0',
  'merge-then-quantize:nf4',
  'quantized-base-unmerged:nf4',
  'requantize:nf4',
])

/**
 * The table entry of a kind.
 * @throws Error for a name not in the table (user input goes through `parseVariant`)
 */
export function variantKind(name: string): VariantKind {
  const kind = BY_NAME.get(name)
  if (!kind) throw new Error(`no variant kind "${name}"`)
  return kind
}

/** Every name `--variants` accepts (`base`, `merged:f16`, …). */
export function variantNames(): string[] {
  return VARIANT_KINDS.flatMap((k) => (k.schemes === 'path' ? [] : k.schemes.length === 0 ? [k.name] : k.schemes.map((s) => `${k.name}:${s}`)))
}

/**
 * Parse one `KIND[:SCHEME]`.
 * @throws UsageError naming the accepted kinds or schemes
 */
export function parseVariant(text: string): VariantRequest {
  const [name, scheme, ...rest] = text.trim().split(':')
  const kind = BY_NAME.get(name!)
  if (!kind || rest.length > 0) throw new UsageError('EVAL_BAD_VARIANT', `--variants: unknown variant "${text}" (expected one of ${variantNames().join(', ')})`)
  if (kind.schemes === 'path') throw new UsageError('EVAL_BAD_VARIANT', `--variants: a written model is given with --variant-file PATH, not "${text}"`)
  if (kind.schemes.length === 0) {
    if (scheme !== undefined) throw new UsageError('EVAL_BAD_VARIANT', `--variants: "${kind.name}" takes no scheme (got "${text}")`)
    return {kind: kind.name, scheme: null}
  }
  if (scheme === undefined || !kind.schemes.includes(scheme)) {
    throw new UsageError('EVAL_BAD_VARIANT', `--variants: "${text}" needs a scheme: ${kind.schemes.map((s) => `${kind.name}:${s}`).join(', ')}`)
  }
  return {kind: kind.name, scheme}
}

/**
 * Parse a comma-separated list of variants (duplicates dropped, order kept).
 * @throws UsageError for an empty list or an unknown variant
 */
export function parseVariantList(text: string): VariantRequest[] {
  const parts = text.split(',').map((s) => s.trim()).filter((s) => s.length > 0)
  if (parts.length === 0) throw new UsageError('EVAL_BAD_VARIANT', `--variants: no variant given (expected a comma-separated list of ${variantNames().join(', ')})`)
  const seen = new Set<string>()
  return parts.map(parseVariant).filter((r) => {
    const key = `${r.kind}:${r.scheme}`
    if (seen.has(key)) return false
    seen.add(key)
    return true
  })
}

/** The name a request is reported under (`merged:f16`, `base`). */
export function variantName(request: VariantRequest): string {
  const kind = variantKind(request.kind)
  return kind.label?.(request.scheme) ?? (request.scheme === null ? request.kind : `${request.kind}:${request.scheme}`)
}
