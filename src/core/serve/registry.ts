/**
 * The strategy table: every serving strategy, one file each in
 * `strategies/`, in table order (the order of reports and `--strategies`).
 * Adding a strategy: write `strategies/<name>.ts` (one `defineStrategy`
 * entry, see `strategy.ts`) and list it here; the bench, its executors,
 * the float64 reference check, the report and the plot pick it up.
 */
import {base} from './strategies/base.js'
import {gather} from './strategies/gather.js'
import {mask} from './strategies/mask.js'
import {merged} from './strategies/merged.js'
import {segment} from './strategies/segment.js'
import {sharedB} from './strategies/shared-b.js'
import type {ServeStrategy} from './strategy.js'

/** Every strategy, in table order. */
export const STRATEGY_TABLE = [base, gather, segment, sharedB, mask, merged] as const

/** A strategy's name. */
export type Strategy = (typeof STRATEGY_TABLE)[number]['name']

/** Every strategy's name, in table order. */
export const STRATEGIES: readonly Strategy[] = Object.freeze(STRATEGY_TABLE.map((s) => s.name))

/** The strategy every other one is measured against (no adapter). */
export const BASELINE: Strategy = base.name

/** Strategies that are one ONNX graph over the weight set (no executor of their own). */
export const GRAPH_STRATEGIES: readonly Strategy[] = Object.freeze(STRATEGY_TABLE.filter((s) => !s.createExecutor).map((s) => s.name))

const BY_NAME: ReadonlyMap<string, ServeStrategy> = new Map(STRATEGY_TABLE.map((s) => [s.name, s]))

/** Whether `name` is a strategy of the table. */
export function isStrategy(name: string): name is Strategy {
  return BY_NAME.has(name)
}

/**
 * The table entry of `name`.
 * @throws Error for a name that is not in the table (names from users are checked with `isStrategy` first)
 */
export function strategyOf(name: string): ServeStrategy {
  const s = BY_NAME.get(name)
  if (!s) throw new Error(`unknown serving strategy "${name}" (the table has ${STRATEGIES.join(', ')})`)
  return s
}

/** `base, gather (…), … and merged (…)`: every strategy with its summary, the baseline by name alone. */
export function describeStrategies(): string {
  const parts = STRATEGY_TABLE.map((s) => (s.name === BASELINE ? s.name : `${s.name} (${s.summary})`))
  return parts.length < 2 ? parts.join('') : `${parts.slice(0, -1).join(', ')} and ${parts.at(-1)}`
}
