/** The quantization flags and their help texts, written from the scheme registry (so a new scheme shows up without editing a command). */
import {availableParallelism} from 'node:os'
import {MAX_THREADS, integer} from './flags.js'
import {QUANT_SCHEMES, QUANT_SCHEME_NAMES, QuantSchemeName} from '../core/quant/schemes.js'

/** The schemes written as `format`. */
export function schemesStoredAs(format: 'safetensors' | 'gguf'): QuantSchemeName[] {
  return QUANT_SCHEME_NAMES.filter((n) => QUANT_SCHEMES[n].format === format)
}

/** The schemes whose block size is set by `flag`. */
export function schemesSizedBy(flag: '--block-size' | '--group-size'): QuantSchemeName[] {
  return QUANT_SCHEME_NAMES.filter((n) => QUANT_SCHEMES[n].blockSizeFlag === flag)
}

/** `nf4: 64…4096, q4_0: 32` for the schemes sized by `flag`. */
export function blockSizeHelp(flag: '--block-size' | '--group-size'): string {
  return schemesSizedBy(flag)
    .map((n) => `${n}: ${QUANT_SCHEMES[n].blockSizeHelp}`)
    .join(', ')
}

/** `nf4: bitsandbytes NF4, …; q4_0: …` */
export function schemeDescriptions(): string {
  return QUANT_SCHEME_NAMES.map((n) => `${n}: ${QUANT_SCHEMES[n].description}`).join('; ')
}

/**
 * Encoding threads when `--threads` is not given: every core, up to this many. Each thread costs about
 * 12 MB of memory, and a tensor is cut into tasks of half a million elements, so past a few threads
 * a typical weight has no task left to share.
 */
export const MAX_DEFAULT_ENCODING_THREADS = 8

/** `--threads` of the commands that quantize (resolved at run time, so help texts name no machine's count). */
export const encodingThreadsFlag = integer({min: 1, max: MAX_THREADS})({description: `threads that encode quantized tensors (default: every core, os.availableParallelism(), up to ${MAX_DEFAULT_ENCODING_THREADS})`})

/** The thread count for `--threads`: the flag, or every core up to `MAX_DEFAULT_ENCODING_THREADS`. */
export function encodingThreads(flag: number | undefined): number {
  return flag ?? Math.min(availableParallelism(), MAX_DEFAULT_ENCODING_THREADS)
}
