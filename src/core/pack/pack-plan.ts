/**
 * Planning a pack from the adapters' headers alone: the module table (R per
 * module, dims agreed by every adapter), the stored dtype, the manifest
 * entries, and the tensor specs of the output file. Pure: no I/O.
 */
import {DTYPES, DType} from '../dtype.js'
import {InputError} from '../errors.js'
import type {LoraConfig} from '../formats/peft-config.js'
import {LoraModule, PEFT_PREFIX} from '../formats/peft-adapter.js'
import {TensorSpec, sanitizeName} from '../formats/safetensors-header.js'
import {TOOL_NAME, toolVersion} from '../version.js'
import {PackAdapterEntry, PackAdapterModule, PackManifest, PackModuleEntry, standardKeys} from '../formats/pack-manifest.js'
import {packTensorNames} from '../formats/pack-file.js'

/** What planning needs to know of one adapter (from its config and safetensors header). */
export interface AdapterHeader {
  /** The adapter's name in the pack. */
  readonly name: string
  /** The adapter folder (absolute). */
  readonly dir: string
  readonly config: LoraConfig
  /** LoRA modules in the order their A tensors are stored. */
  readonly modules: readonly LoraModule[]
  /** Names of the tensors that are not LoRA pairs. */
  readonly extraTensors: readonly string[]
  readonly metadata: Readonly<Record<string, string>>
}

export interface PackPlanOptions {
  /** Stored dtype; default: the adapters' common dtype, F32 when they differ. */
  dtype?: DType
  /** Accept adapters whose `base_model_name_or_path` differ. */
  allowMixedBase?: boolean
}

export interface PackPlan {
  /** The manifest, with sha256 fields still zero (filled in while the data is copied). */
  readonly manifest: PackManifest
  /** Output tensors in file order: per module A, B, scaling. */
  readonly specs: readonly TensorSpec[]
  /** Bytes of A/B stacks that hold no adapter value (slot 0, empty slots, rank padding). */
  readonly paddingBytes: number
  /** Things the user should know (dtype conversion, fan_in_fan_out disagreement). */
  readonly warnings: readonly string[]
}

/** A sha256 placeholder of the final length, so the header's size does not change when the hashes are filled in. */
export const SHA256_PLACEHOLDER = '0'.repeat(64)

/** `a.b.2.c` before `a.b.10.c`: digit runs compare as numbers. */
export function naturalCompare(a: string, b: string): number {
  const pa = a.split(/(\d+)/)
  const pb = b.split(/(\d+)/)
  for (let i = 0; i < Math.min(pa.length, pb.length); i++) {
    const x = pa[i]!
    const y = pb[i]!
    if (x === y) continue
    if (i % 2 === 1) {
      const d = Number(x) - Number(y)
      if (d !== 0) return d
    }
    return x < y ? -1 : 1
  }
  return pa.length - pb.length
}

function describeBase(base: string | null): string {
  return base === null ? '(none)' : `"${sanitizeName(base, 80)}"`
}

/**
 * Plan a pack of `adapters` (slot k + 1 for adapter k).
 * @throws InputError when two adapters disagree on a module's dims or kind (naming both),
 *   on the base model (unless `allowMixedBase`), or store non-float LoRA tensors
 */
export function planPack(adapters: readonly AdapterHeader[], options: PackPlanOptions = {}): PackPlan {
  const warnings: string[] = []
  const bases = new Map<string | null, string>()
  for (const a of adapters) if (!bases.has(a.config.baseModelNameOrPath)) bases.set(a.config.baseModelNameOrPath, a.name)
  if (bases.size > 1 && !options.allowMixedBase) {
    const [[b1, n1], [b2, n2]] = [...bases]
    throw new InputError(
      'PACK_MIXED_BASE',
      `pack: adapters disagree on the base model: ${describeBase(b1)} (adapter "${sanitizeName(n1)}") vs ${describeBase(b2)} (adapter "${sanitizeName(n2)}"); pass --allow-mixed-base if they really adapt the same weights`,
    )
  }

  // the module table: dims from the first adapter that has the module, checked against every other
  const table = new Map<string, {kind: LoraModule['kind']; in: number; out: number; R: number; used: number; fifo: Set<boolean>; first: string}>()
  const dtypes = new Map<DType, number>()
  for (const a of adapters) {
    for (const m of a.modules) {
      if (DTYPES[m.dtype].kind !== 'float') {
        throw new InputError('PACK_NOT_FLOAT', `pack: adapter "${sanitizeName(a.name)}" stores module "${sanitizeName(m.name)}" as ${m.dtype}; only float LoRA weights can be packed`)
      }
      dtypes.set(m.dtype, (dtypes.get(m.dtype) ?? 0) + 1)
      const t = table.get(m.name)
      if (!t) {
        table.set(m.name, {kind: m.kind, in: m.in, out: m.out, R: m.r, used: m.r, fifo: new Set([a.config.fanInFanOut]), first: a.name})
        continue
      }
      if (t.kind !== m.kind || t.in !== m.in || t.out !== m.out) {
        const firstDir = adapters.find((x) => x.name === t.first)!.dir
        throw new InputError(
          'PACK_DIMS_MISMATCH',
          `pack: module "${sanitizeName(m.name)}" is ${t.kind} [out ${t.out}, in ${t.in}] in adapter "${sanitizeName(t.first)}" (${firstDir}) but ${m.kind} [out ${m.out}, in ${m.in}] in adapter "${sanitizeName(a.name)}" (${a.dir}): they do not adapt the same base weights`,
        )
      }
      t.R = Math.max(t.R, m.r)
      t.used += m.r
      t.fifo.add(a.config.fanInFanOut)
    }
  }
  const modules: PackModuleEntry[] = [...table]
    .sort(([a], [b]) => naturalCompare(a, b))
    .map(([name, t]) => ({name, kind: t.kind, in: t.in, out: t.out, R: t.R, fan_in_fan_out: t.fifo.has(true)}))
  const disagree = modules.filter((m) => table.get(m.name)!.fifo.size > 1)
  if (disagree.length > 0) {
    warnings.push(
      `adapters disagree on fan_in_fan_out for ${disagree.length} modules (e.g. "${sanitizeName(disagree[0]!.name)}"); A and B are stored the same way either way, and those modules are marked fan_in_fan_out: true`,
    )
  }

  const dtype = options.dtype ?? (dtypes.size === 1 ? [...dtypes.keys()][0]! : 'F32')
  if (options.dtype === undefined && dtypes.size > 1) {
    const lossy = [...dtypes.keys()].some((d) => DTYPES[d].bits > 32)
    warnings.push(
      `adapters store different dtypes (${[...dtypes].map(([d, n]) => `${d}: ${n} modules`).join(', ')}); packed as F32${lossy ? ', rounding the F64 ones' : ' (exact)'}; choose with --dtype`,
    )
  }

  const S = adapters.length + 1
  const entries = adapters.map((a, i) => adapterEntry(a, i + 1))
  const specs: TensorSpec[] = []
  let paddingBytes = 0
  const size = DTYPES[dtype].bytes
  for (const m of modules) {
    const names = packTensorNames(m)
    specs.push({name: names.a, dtype, shape: [S, m.R, m.in]}, {name: names.b, dtype, shape: [S, m.out, m.R]}, {name: names.scaling, dtype: 'F32', shape: [S]})
    paddingBytes += (S * m.R - table.get(m.name)!.used) * (m.in + m.out) * size
  }
  const distinctBases = [...bases.keys()]
  const manifest: PackManifest = {
    tool: TOOL_NAME,
    tool_version: toolVersion(),
    dtype,
    slots: S,
    base_model_name_or_path: distinctBases.length === 1 ? distinctBases[0]! : null,
    modules,
    adapters: entries,
  }
  return {manifest, specs, paddingBytes, warnings}
}

/** The manifest entry of one adapter (sha256 still the placeholder). */
function adapterEntry(a: AdapterHeader, slot: number): PackAdapterEntry {
  const c = a.config
  const counts = new Map<DType, number>()
  for (const m of a.modules) counts.set(m.dtype, (counts.get(m.dtype) ?? 0) + 1)
  const dtype = [...counts].sort((x, y) => y[1] - x[1])[0]?.[0] ?? 'F32'
  const first = a.modules[0]
  const prefix = first && first.aKey.startsWith(PEFT_PREFIX) ? PEFT_PREFIX : ''
  const infix = first ? keyInfix(first, prefix) : null
  const modules: PackAdapterModule[] = a.modules.map((m) => {
    const [sa, sb] = standardKeys(prefix, infix, m.name, m.kind)
    return {
      name: m.name,
      r: m.r,
      alpha: m.alpha,
      scaling: m.scaling,
      ...(m.dtype !== dtype ? {dtype: m.dtype} : {}),
      ...(sa !== m.aKey || sb !== m.bKey ? {a_key: m.aKey, b_key: m.bKey} : {}),
    }
  })
  return {
    name: a.name,
    slot,
    source: a.dir,
    sha256: SHA256_PLACEHOLDER,
    r: c.r,
    lora_alpha: c.loraAlpha,
    use_rslora: c.useRslora,
    rank_pattern: c.rankPattern,
    alpha_pattern: c.alphaPattern,
    fan_in_fan_out: c.fanInFanOut,
    base_model_name_or_path: c.baseModelNameOrPath,
    target_modules: c.targetModules,
    modules_to_save: c.modulesToSave ?? [],
    extra_tensors: a.extraTensors,
    dtype,
    key_prefix: prefix,
    key_infix: infix,
    modules,
    safetensors_metadata: a.metadata,
    config: c.raw,
    ...(c.text !== undefined ? {config_text: c.text} : {}),
  }
}

/** The adapter-name infix of a module's A key (`default` in `….lora_A.default.weight`), or null. */
function keyInfix(m: LoraModule, prefix: string): string | null {
  const rest = m.aKey.startsWith(prefix + m.name) ? m.aKey.slice(prefix.length + m.name.length) : ''
  const match = (m.kind === 'embedding' ? /^\.lora_embedding_A(?:\.([^.]+))?$/ : /^\.lora_A(?:\.([^.]+))?\.weight$/).exec(rest)
  return match?.[1] ?? null
}
