/**
 * The engines `lora eval --engine` can add beside the runtime, one entry
 * each: llama.cpp through node-llama-cpp (an optional peer, found at run time;
 * `core/engines/llama-cpp.ts`) running GGUF variant files. Wired here, in
 * the CLI, so the eval library depends on no engine.
 */
import {detect} from '../core/formats/detect.js'
import type {NextTokenEngine} from '../core/eval/external-engine.js'
import {LlamaCppSession, loadLlamaCpp} from '../core/engines/llama-cpp.js'

/** llama.cpp on the CPU for GGUF files; `searchFrom`: folders holding a node-llama-cpp to try first. */
export function llamaCppEngine(options: {searchFrom?: readonly string[]} = {}): NextTokenEngine {
  const purpose = 'compute GGUF variants with llama.cpp (lora eval --engine llama.cpp)'
  return {
    name: 'llama.cpp',
    prepare: async () => void (await loadLlamaCpp({searchFrom: options.searchFrom, purpose})),
    accepts: async (path) => (await detect(path)) === 'gguf',
    open: (path, {contextSize, threads}) => LlamaCppSession.open({model: path, contextSize, threads, searchFrom: options.searchFrom, purpose}),
  }
}

/** The engines `--engine` names, by name. */
export const EVAL_ENGINES: Readonly<Record<string, () => NextTokenEngine>> = Object.freeze({'llama.cpp': () => llamaCppEngine()})
