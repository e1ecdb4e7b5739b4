/**
 * llama.cpp's `general.file_type` (`llama_ftype`) and `general.quantization_version`.
 */
import type {GgmlTypeName} from '../formats/gguf-types.js'

/** llama.cpp's `llama_ftype` for `general.file_type`, by the type most 2-D weights have. */
export const GGUF_FILE_TYPES: Readonly<Partial<Record<GgmlTypeName, number>>> = Object.freeze({F32: 0, F16: 1, Q4_0: 2, Q8_0: 7, BF16: 32})
/** `general.quantization_version` llama.cpp's current quantization formats carry. */
export const GGML_QUANTIZATION_VERSION = 2
