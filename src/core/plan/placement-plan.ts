/**
 * The progressive placement ladder of LoRA deployment notes: under a memory
 * limit, adapt first the attention matrices, then the embeddings, then the
 * MLP matrices, then every matrix, and only then raise the rank.
 *
 * Bytes are exact to the `lora-pack` layout (docs/formats.md): per adapted
 * module, S = N + 1 slots (slot 0 the null adapter) of A [S, R, in] and
 * B [S, out, R] in the stored dtype plus the F32 scaling [S]; with shared B
 * at K (`lora-pack-shared-b`): A' [S, K, in] and B_shared [out, K].
 * Header bytes (names, manifest) are not included: they are a few KiB and
 * depend on adapter names and paths.
 */
import {DTYPES, FloatOutputDType} from '../dtype.js'
import {UsageError} from '../errors.js'
import type {ModuleRole, PlannableModule} from './module-inventory.js'

export interface PlanOptions {
  modules: readonly PlannableModule[]
  /** N adapters (S = N + 1 slots). */
  adapters: number
  /** Budget in bytes. */
  budget: number
  /** Base rank R. */
  rank: number
  dtype: FloatOutputDType
  /** Shared-B width K, when asked. */
  sharedB?: number
  /** Highest multiple of R to list (2R, 4R, … up to this × R). */
  maxRankMultiple?: number
}

export interface PlanStage {
  stage: string
  /** Roles adapted at this stage. */
  roles: ModuleRole[]
  rank: number
  modules: number
  /** Trainable parameters of one adapter: Σ r·(in + out). */
  params_per_adapter: number
  /** Bytes of the N stacked adapters (slot 0 included), as `lora pack` stores them. */
  bytes: number
  fits: boolean
  shared_b_bytes?: number
  shared_b_fits?: boolean
}

export interface PlanResult {
  adapters: number
  slots: number
  budget: number
  rank: number
  dtype: FloatOutputDType
  shared_b?: number
  stages: PlanStage[]
  /** The furthest stage whose bytes fit the budget (null: not even the first). */
  furthest_fitting: string | null
  furthest_fitting_shared_b?: string | null
}

const LADDER: Array<{stage: string; roles: ModuleRole[]}> = [
  {stage: 'attention (q,k,v,o)', roles: ['attention']},
  {stage: '+ embeddings', roles: ['attention', 'embedding']},
  {stage: '+ MLP', roles: ['attention', 'embedding', 'mlp']},
  {stage: 'all linear', roles: ['attention', 'embedding', 'mlp', 'head', 'other']},
]

/** Stacked bytes of one module in the `lora-pack` layout. */
export function packedModuleBytes(m: {in: number; out: number}, rank: number, slots: number, dtype: FloatOutputDType): number {
  return slots * rank * (m.in + m.out) * DTYPES[dtype].bytes + slots * DTYPES.F32.bytes
}

/** Bytes of one module in the `lora-pack-shared-b` layout. */
export function sharedBModuleBytes(m: {in: number; out: number}, k: number, slots: number, dtype: FloatOutputDType): number {
  return (slots * k * m.in + m.out * k) * DTYPES[dtype].bytes
}

/**
 * Compute the ladder.
 * @throws UsageError for non-positive counts or a model without attention weights
 */
export function planPlacement(options: PlanOptions): PlanResult {
  if (!Number.isSafeInteger(options.adapters) || options.adapters <= 0) throw new UsageError('BAD_FLAG', `--adapters must be a positive integer (got ${options.adapters})`)
  if (!Number.isSafeInteger(options.rank) || options.rank <= 0) throw new UsageError('BAD_FLAG', `--rank must be a positive integer (got ${options.rank})`)
  if (options.sharedB !== undefined && (!Number.isSafeInteger(options.sharedB) || options.sharedB <= 0)) {
    throw new UsageError('BAD_FLAG', `--shared-b must be a positive integer (got ${options.sharedB})`)
  }
  if (!options.modules.some((m) => m.role === 'attention')) {
    throw new UsageError('PLAN_NO_ATTENTION', 'the model has no recognisable attention projections (q/k/v/o, query/key/value, c_attn): the ladder starts there')
  }
  const slots = options.adapters + 1
  const stageAt = (stage: string, roles: ModuleRole[], rank: number): PlanStage => {
    const chosen = options.modules.filter((m) => roles.includes(m.role))
    let params = 0
    let bytes = 0
    let shared = 0
    for (const m of chosen) {
      params += rank * (m.in + m.out)
      bytes += packedModuleBytes(m, rank, slots, options.dtype)
      if (options.sharedB !== undefined) shared += sharedBModuleBytes(m, options.sharedB, slots, options.dtype)
    }
    const s: PlanStage = {stage, roles, rank, modules: chosen.length, params_per_adapter: params, bytes, fits: bytes <= options.budget}
    if (options.sharedB !== undefined) {
      s.shared_b_bytes = shared
      s.shared_b_fits = shared <= options.budget
    }
    return s
  }
  const stages = LADDER.map((l) => stageAt(l.stage, l.roles, options.rank))
  const all = LADDER[LADDER.length - 1]!
  const maxMultiple = options.maxRankMultiple ?? 8
  for (let multiple = 2; multiple <= maxMultiple; multiple *= 2) {
    stages.push(stageAt(`all linear at ${multiple}R (r=${options.rank * multiple})`, all.roles, options.rank * multiple))
  }
  const furthest = (fits: (s: PlanStage) => boolean | undefined): string | null => {
    let name: string | null = null
    for (const s of stages) {
      if (fits(s)) name = s.stage
      else break
    }
    return name
  }
  const result: PlanResult = {
    adapters: options.adapters,
    slots,
    budget: options.budget,
    rank: options.rank,
    dtype: options.dtype,
    stages,
    furthest_fitting: furthest((s) => s.fits),
  }
  if (options.sharedB !== undefined) {
    result.shared_b = options.sharedB
    result.furthest_fitting_shared_b = furthest((s) => s.shared_b_fits)
  }
  return result
}
