/** Flags shared by commands that describe a Llama-style model. */
import {Flags} from '@oclif/core'
import {UsageError} from '../core/errors.js'
import {ALL_PROJECTIONS, ATTENTION_PROJECTIONS, Projection, isProjection} from '../core/models/llama.js'

export const llamaDimFlags = {
  hidden: Flags.integer({description: 'hidden size', default: 512, min: 1}),
  intermediate: Flags.integer({description: 'MLP intermediate size', default: 1376, min: 1}),
  layers: Flags.integer({description: 'decoder blocks', default: 4, min: 1}),
}

/**
 * Parse `--targets`: comma-separated projection names (`q_proj` or `q`), or
 * `all` for the seven projections, or `attn`/`mlp`.
 */
export function parseTargets(text: string): Projection[] {
  const out: Projection[] = []
  for (const raw of text.split(',').map((s) => s.trim()).filter(Boolean)) {
    const names: readonly string[] =
      raw === 'all' ? ALL_PROJECTIONS : raw === 'attn' ? ATTENTION_PROJECTIONS : raw === 'mlp' ? ['gate_proj', 'up_proj', 'down_proj'] : [raw.endsWith('_proj') ? raw : `${raw}_proj`]
    for (const name of names) {
      if (!isProjection(name)) {
        throw new UsageError('BAD_FLAG', `--targets: unknown projection "${raw}" (expected ${ALL_PROJECTIONS.join(', ')}, or all)`)
      }
      if (!out.includes(name)) out.push(name)
    }
  }
  if (out.length === 0) throw new UsageError('BAD_FLAG', '--targets needs at least one projection')
  return out
}
