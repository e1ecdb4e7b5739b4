/** Progress reporting: long-running core functions accept an `onProgress` callback; commands draw it. */
export interface Progress {
  /** What is being done, e.g. `adapters` or `tensors`. */
  readonly stage: string
  /** Units finished so far. */
  readonly done: number
  /** Units in all. */
  readonly total: number
}

export type ProgressCallback = (progress: Progress) => void
