/**
 * Error rows for `lora eval` and `lora merge --eval`: the text, the variant
 * list, the context, variant files, and the --max-kld gate.
 */
import {writeFileSync} from 'node:fs'
import {join} from 'node:path'
import {STORIES, storiesMissing} from '../../helpers/decoder-fixtures.js'
import {MAX_EVAL_TEXT_BYTES, evaluateVariants} from '../../../src/core/eval/run-eval.js'
import {variantFile} from '../../../src/core/eval/variants/variant-file.js'
import {openDecoderWeights} from '../../../src/core/runtime/load-decoder.js'
import {ErrorCase, sparseFile} from './fixtures.js'

/** A text file with these bytes. */
const text = (dir: string, bytes: string | Uint8Array, name = 't.txt') => {
  const path = join(dir, name)
  writeFileSync(path, bytes)
  return path
}

export const EVAL_CASES: ErrorCase[] = [
  {code: 'EVAL_BAD_VARIANT', exit: 2, input: 'eval --variants merged (no scheme)', cli: async (dir, fx) => ['eval', '--base', await fx.decoder(), '--text', text(dir, 'a b'), '--variants', 'merged']},
  {code: 'EVAL_TEXT_EMPTY', exit: 2, input: 'an evaluation text of blank lines', cli: async (dir, fx) => ['eval', '--base', await fx.decoder(), '--text', text(dir, ' \n\n\t\n')]},
  {code: 'EVAL_TEXT_NOT_UTF8', exit: 2, input: 'an evaluation text with the bytes ff fe', cli: async (dir, fx) => ['eval', '--base', await fx.decoder(), '--text', text(dir, Uint8Array.of(0x61, 0xff, 0xfe))]},
  {code: 'EVAL_TEXT_TOO_LARGE', exit: 2, input: `an evaluation text of ${MAX_EVAL_TEXT_BYTES} + 1 bytes (sparse)`, cli: async (dir, fx) => ['eval', '--base', await fx.decoder(), '--text', await sparseFile(join(dir, 'big.txt'), MAX_EVAL_TEXT_BYTES + 1)]},
  {code: 'EVAL_BAD_CONTEXT', exit: 2, input: 'eval --ctx 1000 on a model of 256 positions', cli: async (dir, fx) => ['eval', '--base', await fx.decoder(), '--text', text(dir, 'a b'), '--ctx', '1000']},
  {code: 'EVAL_ENGINE_NO_FILE', exit: 2, input: 'eval --engine llama.cpp without a GGUF variant file', cli: async (dir, fx) => ['eval', '--base', await fx.decoder(), '--text', text(dir, 'a b'), '--variants', 'base', '--engine', 'llama.cpp']},
  {code: 'EVAL_NO_VARIANTS', exit: 2, input: 'no variant and no variant file', core: async (dir, fx) => evaluateVariants({base: await fx.decoder(), text: text(dir, 'a b'), variants: []})},
  {
    code: 'EVAL_VARIANT_MISMATCH',
    exit: 2,
    input: 'a variant file with 40 tokens for a base of 32',
    core: async (_dir, fx) => {
      const base = await openDecoderWeights(await fx.decoder())
      try {
        await variantFile.build({base, adapters: [], quant: () => ({scheme: 'q4_0', blockSize: 32, doubleQuant: false})}, await fx.decoder({vocab: 40}, 'decoder-v40'), true)
      } finally {
        await base.close()
      }
    },
  },
  {
    code: 'MAX_KLD_EXCEEDED',
    exit: 1,
    input: 'eval of stories260K --variants merge-then-quantize:q4_0 --max-kld 0',
    skip: storiesMissing(),
    cli: (dir) => ['eval', '--base', join(STORIES, 'hf'), '--text', text(dir, 'Once upon a time, there was a boy named Ben.'), '--variants', 'merge-then-quantize:q4_0', '--max-kld', '0'],
  },
]
