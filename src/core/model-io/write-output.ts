/**
 * A model written in the format asked, from a table of writers: a
 * safetensors folder (`write-model.ts`) or a GGUF file llama.cpp loads
 * (`write-gguf-model.ts`). `quantize` and `merge` write through here.
 */
import {writeGgufModel} from './write-gguf-model.js'
import {WriteModelOptions, WriteModelResult, writeModel} from './write-model.js'

/** The model writers, by output format. */
export const MODEL_WRITERS: Readonly<Record<WriteModelOptions['format'], (options: WriteModelOptions) => Promise<WriteModelResult>>> = Object.freeze({
  safetensors: writeModel,
  gguf: writeGgufModel,
})

/**
 * Write `options.source` with `options.jobs` in `options.format`.
 * @throws as the format's writer (see `writeModel`, `writeGgufModel`)
 */
export function writeModelOutput(options: WriteModelOptions): Promise<WriteModelResult> {
  return MODEL_WRITERS[options.format](options)
}
