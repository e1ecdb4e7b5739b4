/** Help texts of the quantization flags, written from the scheme registry (so a new scheme shows up without editing a command). */
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
