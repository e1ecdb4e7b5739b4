/**
 * Another inference engine computing a variant file's figures beside the
 * runtime's (`lora eval --engine llama.cpp`): it gives the next-token
 * distribution at every position of a token sequence, and the figures are
 * computed from those exactly as from the runtime's logits. The engine is
 * handed in by the caller (the command wires llama.cpp, an optional peer),
 * so this library depends on no engine.
 */

/** One model loaded by an engine. */
export interface EngineSession {
  /**
   * The next-token probabilities after each prefix of `ids` (row p: P(· | ids[0..p]),
   * `vocab` entries), the sequence starting empty each call.
   */
  nextTokenProbabilities(ids: readonly number[], vocab: number): Promise<Float64Array[]>
  close(): Promise<void>
}

/** An engine that can run some variant files. */
export interface NextTokenEngine {
  /** Its name in reports (`llama.cpp`). */
  readonly name: string
  /** Fail early, with the engine's one-line error, when it cannot run at all (not installed). */
  prepare?(): Promise<void>
  /** Whether it runs the model at `path` (llama.cpp: GGUF files). */
  accepts(path: string): Promise<boolean>
  /** Load the model at `path` for sequences of at most `contextSize` tokens. */
  open(path: string, options: {contextSize: number; threads?: number}): Promise<EngineSession>
}

/** Probabilities below this are floored before their logarithm (llama.cpp may leave tokens out: probability 0). */
export const MIN_ENGINE_PROBABILITY = 1e-30
