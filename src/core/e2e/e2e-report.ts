/**
 * The report of `lora bench --e2e` (`--json`, `--out`): the run's
 * configuration, one result per (strategy, adapters loaded), and whether
 * every strategy generated the reference's tokens. docs/bench.md describes
 * every field.
 */
import {GateError} from '../errors.js'
import type {TokenMismatch} from './check-tokens.js'
import type {RatiosToBase, TraceMetrics} from './metrics.js'

/** What was run. */
export interface E2eConfig {
  kind: 'e2e'
  model: {
    /** A model path, or `synthetic`. */
    source: string
    architecture: string
    hidden: number
    intermediate: number
    layers: number
    heads: number
    kv_heads: number
    head_dim: number
    vocab: number
    base_dtype: string
  }
  adapters: {
    /** A pack path, or `synthetic`. */
    source: string
    counts: number[]
    rank: number
    targets: string[]
    /** Width K of the shared-B form (largest), null without one. */
    shared_k: number | null
    /** The `--shared-b` file, null otherwise. */
    shared_b: string | null
    /** Whether the shared-B form holds the adapters exactly (synthetic adapters do). */
    shared_exact: boolean
  }
  workload: {
    /** distinct, uniform, identical, zipf:α, or trace. */
    kind: string
    trace: string | null
    requests: number
    prompt_tokens: number | null
    gen_tokens: number | null
    arrival: 'offline' | 'poisson'
    rate: number | null
    base_fraction: number
    seed: number
  }
  scheduler: {max_batch: number; kv_budget_bytes: number | null; kv_bytes_per_token: number}
  ep: string
  ep_detail: string
  onnxruntime_version: string
  threads: number
  merged_cache: number
  tie_tolerance: number
  /** Mean KL(f32 base ‖ this base) per position with the requests' adapters, for f16 and q4 bases; null for f32. */
  kl_to_float: {mean: number; positions: number; requests: number} | null
  /** The process's peak resident set over the whole run (all strategies together). */
  rss_peak_bytes: number
  notes: string[]
}

/** One strategy at one adapter count: its trace's figures (`TraceMetrics`) and the rest. */
export interface E2eResult extends TraceMetrics {
  strategy: string
  /** Adapters loaded. */
  adapters: number
  /** Distinct adapters the requests asked for. */
  distinct_adapters: number
  policy: 'mixed' | 'per-adapter'
  memory: {
    /** Resident-set growth while its session was built (weights, prepacked copies). */
    /** Resident-set growth while the session was built; null where the resident set shrank meanwhile. */
    session_bytes: number | null
    /** Adapter weights it holds by construction (stacks f32; merged copies). */
    adapter_bytes: number
    /** Largest KV cache of its running batch, as allocated (rows × capacity: the positions the rows' requests reach). */
    kv_cache_bytes_peak: number
    /** Largest sum of its requests' KV reservations. */
    kv_reserved_bytes_peak: number
    /** GPU memory growth while its session was built (CUDA through nvidia-smi), null elsewhere. */
    device_bytes: number | null
  }
  relative_to_base: RatiosToBase
  tokens_equal: boolean
  /** Requests whose generated tokens are all the reference's. */
  exact_requests: number
  /** Requests that diverged from the reference where its best two logits were within the tie tolerance. */
  near_ties: number
  /** The tolerance of its check: the run's, or a peer's own (its arithmetic is coarser than float32). */
  tie_tolerance: number
  /** The first mismatching requests (at most 10). */
  mismatches: TokenMismatch[]
  requests: number
  peak_batch: number
  /** Counters of the strategy (merged: merges, hits, swaps), null for others. */
  stats: Record<string, number> | null
  /** Latency samples (ms, 0.01 ms resolution) for the CDF plot. */
  samples_ms: {ttft: number[]; itl: number[]}
}

/** `lora bench --e2e`'s report. */
export interface E2eReport {
  config: E2eConfig
  results: E2eResult[]
  /** Every strategy generated the reference's tokens (near ties allowed). */
  tokens_equal: boolean
}

/**
 * Throw the correctness gate's error when a strategy's tokens differed.
 * @throws GateError TOKENS_DIFFER naming the strategies and first requests
 */
export function assertTokensEqual(report: E2eReport): void {
  const bad = report.results.filter((r) => !r.tokens_equal)
  if (bad.length === 0) return
  const lines = bad.map((r) => {
    const m = r.mismatches[0]!
    return `${r.strategy} at ${r.adapters} adapters: request ${m.request} (adapter ${m.adapter ?? 'none'}) generated ${m.got} at token ${m.position} where the reference has ${m.expected}${r.mismatches.length > 1 ? ` (+${r.mismatches.length - 1} more requests)` : ''}`
  })
  throw new GateError('TOKENS_DIFFER', `generated tokens differ from the base+adapter reference: ${lines.join('; ')}`)
}
