/**
 * `--variant-file PATH`: a model already written (a GGUF, a Hugging Face
 * folder holding nf4/int4/f16 weights, …), read back as stored and served as
 * is: adapters are not applied (the file is expected to hold them merged).
 * How it was built is unknown, so it has no control of its own (`lora merge
 * --eval` names the variant it was written as, which gives one).
 */
import {basename} from 'node:path'
import {InputError} from '../../errors.js'
import {openDecoderWeights} from '../../runtime/load-decoder.js'
import type {VariantKind} from './variant-kind.js'

/** The `file` kind (`--variant-file PATH`): `scheme` is the path. */
export const variantFile: VariantKind = {
  name: 'file',
  description: 'a model file or folder already written, read back as stored (`--variant-file`)',
  schemes: 'path',
  controlled: false,
  gated: true,
  label: (path) => `file:${basename(path!.replace(/[\\/]+$/, ''))}`,
  modelKey: (path) => `file:${path}`,
  async build(ctx, path) {
    const weights = await openDecoderWeights(path!)
    const base = ctx.base.config
    if (weights.config.vocab !== base.vocab) {
      await weights.close()
      throw new InputError('EVAL_VARIANT_MISMATCH', `read ${path}: its vocabulary holds ${weights.config.vocab} tokens but the base's holds ${base.vocab} (a variant file must be the same model, re-encoded)`)
    }
    return {weights, close: () => weights.close()}
  },
}

