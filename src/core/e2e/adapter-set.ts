/**
 * The adapters an end-to-end run loads: their names (the requests ask for
 * them), the routed stacks and shared-B form the strategies' graphs are
 * built from (`RoutedStackSource` of the decoder runtime), and any one
 * adapter's own factors, for the reference run and the merged strategy.
 * Two sources: synthetic (`synthetic-adapters.ts`) or a `lora-pack` file
 * (`--pack`), with the `lora compress` output of that pack (`--shared-b`)
 * for shared-b.
 */
import {InputError} from '../errors.js'
import {SharedBFile, sharedBTensorNames} from '../formats/shared-b-file.js'
import {sanitizeName} from '../formats/safetensors-header.js'
import {Projection, projectionPath} from '../models/llama.js'
import {PackFile} from '../formats/pack-file.js'
import {transposeTyped} from '../linalg/dense.js'
import {AdapterFactors, ModuleFactors, projectionShapeOf, readPackFactors} from '../runtime/adapter-factors.js'
import type {DecoderConfig} from '../runtime/decoder-config.js'
import {RoutedStackSource, SharedModuleStacks, packStackSource} from '../runtime/routed-deltas.js'

/** An adapted module: its path, dims and (padded) rank. */
export interface AdaptedModule {
  readonly name: string
  readonly in: number
  readonly out: number
  readonly rank: number
}

/** Which form of an adapter: the routed stacks' (A, s·B) or the shared-B form's (A′, U). */
export type FactorForm = 'stacks' | 'shared'

/** The adapters of a run (see the module comment). */
export interface E2eAdapterSet extends RoutedStackSource {
  readonly kind: 'synthetic' | 'pack'
  readonly modules: readonly AdaptedModule[]
  /** The stacks' (padded) rank R. */
  readonly rank: number
  /** Width K of the shared-B form (the largest), or null when there is none. */
  readonly sharedK: number | null
  /** Whether the shared-B form holds the same adapters exactly (then shared-b is checked against the routed stacks' reference). */
  readonly sharedExact: boolean
  /** One adapter's factors in `form` (`ModuleFactors.b` times `scaling` is the served B). */
  factors(name: string, form: FactorForm): Promise<AdapterFactors>
  /** Bytes of a form's stacks as the graphs hold them (float32). */
  bytes(form: FactorForm): number
  close(): Promise<void>
}

/** The modules `targets` adapt in every layer of `config`, with `rank`. */
export function adaptedModules(config: DecoderConfig, targets: readonly Projection[], rank: number): AdaptedModule[] {
  const out: AdaptedModule[] = []
  for (let layer = 0; layer < config.layers; layer++)
    for (const p of targets) {
      const [o, i] = projectionShapeOf(config, p)
      out.push({name: projectionPath(layer, p), in: i, out: o, rank})
    }
  return out
}

/**
 * The adapters of a `lora-pack` file (checked against the decoder), and
 * with `sharedBPath` the `lora compress` output of that pack for shared-b
 * (its adapters must be the pack's, in the same slots).
 * @throws InputError for a pack or shared-B file that does not fit the decoder or each other
 */
export async function packAdapters(packPath: string, config: DecoderConfig, sharedBPath?: string): Promise<E2eAdapterSet> {
  const routed = await packStackSource(packPath, config)
  const pack = await PackFile.open(packPath)
  const modules = [...pack.modules.values()].map((m) => ({name: m.name, in: m.in, out: m.out, rank: m.R}))
  const slots = pack.slots
  await pack.close()
  const shared = sharedBPath ? await SharedBFile.open(sharedBPath) : undefined
  try {
    if (shared) checkSharedFile(shared, routed.adapters, modules, packPath)
  } catch (error) {
    await shared?.close()
    throw error
  }
  const sharedStacks = async (module: string): Promise<SharedModuleStacks | undefined> => {
    const m = modules.find((x) => x.name === module)
    if (!m || !shared) return undefined
    const k = shared.ranks.get(module)!
    const ak = Float32Array.from((await shared.file.readTensor(sharedBTensorNames(shared.module(module)).a)).toFloat32())
    return {ak, bk: transposeTyped(Float32Array.from((await shared.readSharedB(module)).toFloat32()), m.out, k), k, in: m.in, out: m.out}
  }
  return {
    kind: 'pack',
    source: packPath,
    adapters: routed.adapters,
    stacks: routed.stacks,
    ...(shared ? {shared: sharedStacks} : {}),
    modules,
    rank: Math.max(...modules.map((m) => m.rank)),
    sharedK: shared ? Math.max(...modules.map((m) => shared.ranks.get(m.name)!)) : null,
    sharedExact: false,
    async factors(name, form) {
      if (form === 'stacks' || !shared) return readPackFactors(packPath, name)
      const slot = routed.adapters.indexOf(name) + 1
      if (slot === 0) throw new InputError('PACK_NO_SUCH_ADAPTER', `read ${packPath}: no adapter named "${sanitizeName(name)}"`)
      const out = new Map<string, ModuleFactors>()
      for (const m of modules) {
        const k = shared.ranks.get(m.name)!
        out.set(m.name, {r: k, scaling: 1, a: Float32Array.from((await shared.readA(m.name, slot)).toFloat32()), b: Float32Array.from((await shared.readSharedB(m.name)).toFloat32()), in: m.in, out: m.out})
      }
      return {name, source: sharedBPath!, modules: out}
    },
    bytes(form) {
      return modules.reduce((sum, m) => {
        const k = shared?.ranks.get(m.name) ?? 0
        return sum + 4 * (form === 'stacks' ? slots * m.rank * (m.in + m.out) : slots * k * m.in + k * m.out)
      }, 0)
    },
    async close() {
      await shared?.close()
    },
  }
}

function checkSharedFile(file: SharedBFile, names: readonly string[], modules: readonly AdaptedModule[], packPath: string): void {
  const where = `read ${file.path}`
  const theirs = file.manifest.adapters.map((a) => a.name)
  const differ = theirs.findIndex((n, i) => n !== names[i])
  if (theirs.length !== names.length || differ >= 0) {
    throw new InputError('SHARED_B_MISMATCH', `${where}: it holds ${theirs.length} adapters${differ >= 0 ? ` ("${sanitizeName(theirs[differ]!)}" in slot ${differ + 1})` : ''}, not the ${names.length} of the pack ${packPath} (--shared-b must be compressed from --pack)`)
  }
  for (const m of modules) {
    const entry = file.modules.get(m.name)
    if (!entry) throw new InputError('SHARED_B_MISMATCH', `${where}: it has no module ${sanitizeName(m.name)}, which the pack ${packPath} adapts (--shared-b must be compressed from --pack)`)
    if (entry.kind !== 'linear' || entry.in !== m.in || entry.out !== m.out) throw new InputError('SHARED_B_MISMATCH', `${where}: module ${sanitizeName(m.name)} is [${entry.out}, ${entry.in}] but the pack's is [${m.out}, ${m.in}]`)
  }
}

