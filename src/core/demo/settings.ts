/**
 * What `lora demo` builds and measures: the model and adapter sizes, the
 * compression rule, the quantization schemes and the benchmark's short
 * configuration. `full` is the demo (about a minute on 2 cores); `small`
 * runs every step in a few seconds (smoke tests, CI).
 */
import type {FloatOutputDType} from '../dtype.js'
import type {Projection} from '../models/llama.js'
import type {QuantSchemeName} from '../quant/schemes.js'
import {STRATEGIES, type Strategy} from '../serve/registry.js'

export interface DemoBenchSettings {
  /** Adapter counts served. */
  readonly counts: readonly number[]
  /** Requests per step (decode, one token each). */
  readonly batch: number
  readonly rounds: number
  readonly stepsPerRound: number
  readonly threads: number
  /** Merged weight sets the `merged` strategy holds (LRU); the others are merged on demand. */
  readonly mergedCache: number
  readonly strategies: readonly Strategy[]
}

export interface DemoSettings {
  readonly hidden: number
  readonly intermediate: number
  readonly layers: number
  readonly vocab: number
  readonly dtype: FloatOutputDType
  readonly adapters: number
  /** Ranks assigned to adapters in turn. */
  readonly ranks: readonly number[]
  readonly targets: readonly Projection[]
  /** Share of every B drawn from a basis its module's adapters share (0..1). */
  readonly sharedSubspace: number
  /** The K rule: the smallest swept K whose largest per-adapter relative error is at most this (and that saves bytes). */
  readonly maxError: number
  /** Schemes the merged model is quantized to. */
  readonly schemes: readonly QuantSchemeName[]
  /** Probe rows of the merge quality report. */
  readonly probeRows: number
  readonly bench: DemoBenchSettings
}

export const DEMO_SIZE_NAMES = ['full', 'small'] as const
export type DemoSize = (typeof DEMO_SIZE_NAMES)[number]

const FULL_SETTINGS: DemoSettings = {
  hidden: 512,
  intermediate: 1376,
  layers: 4,
  vocab: 8192,
  dtype: 'F16',
  adapters: 64,
  ranks: [8, 16, 32],
  targets: ['q_proj', 'k_proj', 'v_proj', 'o_proj'],
  sharedSubspace: 0.98,
  maxError: 0.2,
  schemes: ['nf4', 'q4_0'],
  probeRows: 256,
  bench: {counts: [1, 16, 64], batch: 16, rounds: 6, stepsPerRound: 2, threads: 2, mergedCache: 4, strategies: STRATEGIES},
}

export const DEMO_SIZES: Readonly<Record<DemoSize, DemoSettings>> = {
  full: FULL_SETTINGS,
  // every step at toy sizes (tests): the same choices, smaller shapes and fewer timed steps
  small: {
    ...FULL_SETTINGS,
    hidden: 64,
    intermediate: 128,
    layers: 1,
    vocab: 512, // the smallest SentencePiece-style tokenizer (259 specials and bytes + characters) needs about 340
    adapters: 12,
    probeRows: 64,
    bench: {...FULL_SETTINGS.bench, counts: [1, 4, 12], batch: 4, rounds: 1},
  },
}
