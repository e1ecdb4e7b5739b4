/** Flags shared by commands that describe a Llama-style model. */
import {Flags} from '@oclif/core'
import {UsageError} from '../core/errors.js'
import {ALL_PROJECTIONS, ATTENTION_PROJECTIONS, Projection, isProjection} from '../core/models/llama.js'
import {MAX_LAYERS, MAX_MODEL_DIM, integer} from './flags.js'

export const llamaDimFlags = {
  hidden: integer({min: 1, max: MAX_MODEL_DIM})({description: 'hidden size', default: 512}),
  intermediate: integer({min: 1, max: MAX_MODEL_DIM})({description: 'MLP intermediate size', default: 1376}),
  layers: integer({min: 1, max: MAX_LAYERS})({description: 'decoder blocks', default: 4}),
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

/** The `--targets` flag type (`parseTargets`). */
export function targets() {
  return Flags.custom<Projection[]>({helpValue: '<projections>', parse: async (input) => parseTargets(input)})
}
