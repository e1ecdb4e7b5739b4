/**
 * The weights of one benchmark configuration, in the routing layout of
 * `serve/lora-layout.ts`, in one ONNX external data file (`weights.bin`)
 * that every strategy's model maps. Built once per configuration in a work
 * folder and reused while `index.json` matches the configuration.
 *
 * Sources: synthetic (seeded), or a real base (`--base`, our `synth base`
 * layout) and a real pack (`--pack`, `lora pack` output) for the stacks; the
 * shared-B form from `shared-sources.ts` (synthetic, a `--shared-b` file, or
 * the pack compressed in memory).
 */
import {createHash} from 'node:crypto'
import {existsSync, statSync, mkdirSync, openSync, closeSync, readSync, readFileSync, renameSync, rmSync, writeFileSync} from 'node:fs'
import {join} from 'node:path'
import {InputError, UsageError, withFileContextSync} from '../../errors.js'
import {removeOnExit} from '../../io/exit-cleanup.js'
import {assertDiskFits} from '../../io/resources.js'
import {removeStaleTemporaries, temporarySibling} from '../../io/temporaries.js'
import {fromFloat, toFloat32} from '../../dtype.js'
import {ELEM_BYTES, ExternalDataFile, ExternalTensor, GraphBuilder} from '../../onnx/graph-builder.js'
import {GroupSpec, ModuleSpec, StackDims, layoutNames, loraGroups, moduleSpecs} from '../lora-layout.js'
import type {ProgressCallback} from '../../progress.js'
import {Rng} from '../../random.js'
import {openPackStacks} from './pack-stacks.js'
import {SharedErrors, SharedSource, SharedSourceKind, compressPackShared, openSharedBFile, syntheticShared} from './shared-sources.js'
import {BaseWeightSource, StackSource, adapterRank, fillSynthetic, paddedRank, syntheticStacks} from './weight-sources.js'

export {adapterRank, fillSynthetic, paddedRank}

/**
 * How the routed adapter stacks are stored (`--stack-dtype`): the A and B
 * stacks of gather/segment/mask/merged and the shared-B form's A'. The base,
 * the norms and the shared B stay f32; the products are f32 either way
 * (f16 stacks are gathered in f16 and cast right after).
 */
export const STACK_DTYPES = ['f32', 'f16'] as const
/** `f32` or `f16`: how the stacks are stored. */
export type StackDtype = (typeof STACK_DTYPES)[number]

/** Bumped when the layout or synthetic values change, so old caches are rebuilt. */
export const WEIGHT_SET_VERSION = 5

/** Bytes at each end of `weights.bin` covered by the checksum a reused set is checked against. */
export const CHECKSUM_SPAN = 1 << 20

/** One benchmark configuration's weights: model dims, adapters, ranks, sources; its hash names the cache folder. */
export interface WeightSetSpec {
  dims: StackDims
  /** Adapters N (slots S = N + 1, slot 0 = no adapter). */
  adapters: number
  /** Ranks assigned to adapters in turn (`[16]`, or `[8, 16, 64]`); stacks pad to the largest. */
  ranks: readonly number[]
  /** Shared basis size K of the shared-B form (synthetic, or the pack compressed in memory); a `sharedBPath` file has its own. */
  sharedK: number
  /** Fuse the A stacks of projections that share an input (q/k/v, gate/up). */
  fuse: boolean
  seed: number
  /** Which parts to build: routed stacks and/or the shared-B form. */
  include: {stacks: boolean; shared: boolean}
  /** A real base model (file, index or folder); synthetic when absent. */
  basePath?: string
  /** A `lora pack` file for the stacks; synthetic when absent. */
  packPath?: string
  /** A `lora-pack-shared-b` file compressed from `packPath`, for the shared-B form. */
  sharedBPath?: string
  /** `f16`: the stacks and A' stored as f16 (rounded to nearest even once); absent = f32. */
  stackDtype?: 'f16'
}

/** What the shared-B form holds (when built). */
export interface SharedInfo {
  kind: SharedSourceKind
  /** Padded width W: the largest K. */
  width: number
  /** K of each adapted module, by module key. */
  ranks: Record<string, number>
  /** Relative errors of the compressed adapters (null: synthetic). */
  errors: SharedErrors | null
  /** Bytes of zero padding (modules with K < W), of `bytes` in all. */
  paddingBytes: number
  bytes: number
  notes: string[]
}

/** A built weight set's `index.json`: the spec, slots, rank and every tensor's range in `weights.bin`. */
export interface WeightSetInfo {
  spec: WeightSetSpec
  slots: number
  rank: number
  /** `type` absent = float32. */
  tensors: Record<string, {dims: number[]; offset: number; length: number; type?: 'float16'}>
  /** Ranks of the slots (slot 0 = 0), after reading a pack. */
  slotRanks: number[]
  /** The shared-B form, null when not built. */
  shared: SharedInfo | null
  /** `weights.bin` as written: its size and the sha256 of its first and last `CHECKSUM_SPAN` bytes. */
  data: {bytes: number; sha256: string}
}

/** A built weight set: tensor ranges in `weights.bin`, and positional reads for references. */
export class WeightSet {
  static readonly DATA_FILE = 'weights.bin'
  readonly modules: ModuleSpec[]
  readonly groups: GroupSpec[]

  private constructor(
    readonly dir: string,
    readonly info: WeightSetInfo,
  ) {
    this.modules = moduleSpecs(info.spec.dims)
    this.groups = loraGroups(info.spec.dims, info.spec.fuse)
  }

  /** Open a built set (its `index.json`). */
  static open(dir: string): WeightSet {
    const path = join(dir, 'index.json')
    return new WeightSet(dir, JSON.parse(withFileContextSync('read', path, () => readFileSync(path, 'utf8'))) as WeightSetInfo)
  }

  get spec(): WeightSetSpec {
    return this.info.spec
  }

  /** Slots S (adapters + 1). */
  get slots(): number {
    return this.info.slots
  }

  /** Padded rank R. */
  get rank(): number {
    return this.info.rank
  }

  /** Width W of the shared-B tensors (the largest K; `spec.sharedK` when not built). */
  get sharedWidth(): number {
    return this.info.shared?.width ?? this.info.spec.sharedK
  }

  /** K of an adapted module in the shared-B form. */
  sharedRank(moduleKey: string): number {
    return this.info.shared?.ranks[moduleKey] ?? this.info.spec.sharedK
  }

  get dataPath(): string {
    return join(this.dir, WeightSet.DATA_FILE)
  }

  has(name: string): boolean {
    return name in this.info.tensors
  }

  /** The tensor as an external initializer of a model written in `dir`. */
  tensor(name: string): ExternalTensor {
    const t = this.info.tensors[name]
    if (!t) throw new Error(`weight set ${this.dir} has no tensor ${name}`)
    return {location: WeightSet.DATA_FILE, range: {offset: t.offset, length: t.length}, dims: t.dims, type: t.type ?? 'float32'}
  }

  /** How the stacks are stored. */
  get stackDtype(): StackDtype {
    return this.info.spec.stackDtype ?? 'f32'
  }

  /** Bytes of the named tensors. */
  bytes(names: Iterable<string>): number {
    let total = 0
    for (const n of names) total += this.info.tensors[n]?.length ?? 0
    return total
  }

  /** Read `count` elements of `name` starting at element `start`, as f32 (f16 tensors widened exactly). */
  read(name: string, start: number, count: number): Float32Array {
    const t = this.info.tensors[name]
    if (!t) throw new Error(`weight set ${this.dir} has no tensor ${name}`)
    const size = ELEM_BYTES[t.type ?? 'float32']
    if (start < 0 || (start + count) * size > t.length) throw new Error(`read ${name}: elements [${start}, ${start + count}) out of range`)
    const bytes = new Uint8Array(count * size)
    const fd = withFileContextSync('read', this.dataPath, () => openSync(this.dataPath, 'r'))
    try {
      let done = 0
      while (done < bytes.byteLength) {
        const n = readSync(fd, bytes, done, bytes.byteLength - done, t.offset + start * size + done)
        if (n === 0) throw new InputError('WEIGHTS_TRUNCATED', `read ${this.dataPath}: file ends inside tensor ${name}`)
        done += n
      }
    } finally {
      closeSync(fd)
    }
    return t.type === 'float16' ? toFloat32('F16', bytes) : new Float32Array(bytes.buffer)
  }
}

/** Where weight sets are cached, and progress. */
export interface PrepareOptions {
  /** Folder holding cached weight sets (one sub-folder per configuration). */
  workDir: string
  onProgress?: ProgressCallback
}

/**
 * Bytes of the weight set of `spec` with padded rank `rank` and shared width
 * `sharedWidth` (each tensor aligned as `ExternalDataFile` places it): what
 * `prepareWeightSet` writes, known before a byte is.
 */
export function weightSetBytes(spec: WeightSetSpec, rank: number, sharedWidth: number): number {
  const S = spec.adapters + 1
  const stack = spec.stackDtype === 'f16' ? 2 : 4
  const sizes: number[] = []
  for (const m of moduleSpecs(spec.dims)) sizes.push(m.in * m.out * 4)
  const layers = spec.dims.model === 'layer' ? 0 : spec.dims.layers
  for (let i = 0; i < 2 * layers; i++) sizes.push(spec.dims.hidden * 4)
  for (const g of loraGroups(spec.dims, spec.fuse)) {
    if (spec.include.stacks) {
      sizes.push(S * g.members.length * rank * g.in * stack)
      for (const m of g.members) sizes.push(S * m.out * rank * stack)
    }
    if (spec.include.shared) {
      sizes.push(S * g.members.length * sharedWidth * g.in * stack)
      for (const m of g.members) sizes.push(sharedWidth * m.out * 4)
    }
  }
  return sizes.reduce((s, n) => s + Math.ceil(n / ExternalDataFile.ALIGNMENT) * ExternalDataFile.ALIGNMENT, 0)
}

/** The cache folder name of a spec. */
export function weightSetKey(spec: WeightSetSpec): string {
  // a rewritten base or pack gets a new key: its size and time are part of it
  const stamp = (path?: string) => (path && existsSync(path) ? `${statSync(path).size}:${statSync(path).mtimeMs}` : null)
  const text = JSON.stringify({v: WEIGHT_SET_VERSION, ...spec, stamps: [stamp(spec.basePath), stamp(spec.packPath), stamp(spec.sharedBPath)]})
  return `ws-${createHash('sha256').update(text).digest('hex').slice(0, 16)}`
}

/**
 * Build (or reuse) the weight set of `spec` under `options.workDir`.
 * @throws InputError when the base, pack or shared-B file cannot be read or their shapes disagree with the flags or each other.
 */
export async function prepareWeightSet(spec: WeightSetSpec, options: PrepareOptions): Promise<WeightSet> {
  validateSpec(spec)
  await removeStaleTemporaries(options.workDir)
  const final = join(options.workDir, weightSetKey(spec))
  const reused = reusable(final, spec)
  if (reused) return reused
  // a partial or stale set (a run killed by a full disk, another version) is rebuilt
  withFileContextSync('write', final, () => rmSync(final, {recursive: true, force: true}))
  // built under a temporary name (owner PID in it) and renamed into place complete
  const dir = temporarySibling(final)
  const releaseDir = removeOnExit(dir)
  try {
    withFileContextSync('write', dir, () => mkdirSync(dir, {recursive: true}))
    await buildWeightSet(spec, dir, options)
    withFileContextSync('write', final, () => renameSync(dir, final))
  } catch (error) {
    rmSync(dir, {recursive: true, force: true})
    // another run of the same configuration finished first: use its set
    const theirs = reusable(final, spec)
    if (theirs) return theirs
    throw error
  } finally {
    releaseDir()
  }
  return WeightSet.open(final)
}

/**
 * The set in `dir` when it is complete and of `spec`: its index parses and
 * names this spec, and `weights.bin` has the size and the head and tail
 * checksum the index recorded. Anything else is undefined (to rebuild).
 */
function reusable(dir: string, spec: WeightSetSpec): WeightSet | undefined {
  try {
    const set = WeightSet.open(dir)
    if (JSON.stringify(set.spec) !== JSON.stringify(spec) || !set.info.data) return undefined
    const size = statSync(set.dataPath).size
    if (size !== set.info.data.bytes || dataChecksum(set.dataPath, size) !== set.info.data.sha256) return undefined
    return set
  } catch {
    return undefined
  }
}

/** sha256 of the size and the first and last `CHECKSUM_SPAN` bytes of a file of `size` bytes. */
function dataChecksum(path: string, size: number): string {
  const hash = createHash('sha256').update(String(size))
  const fd = withFileContextSync('read', path, () => openSync(path, 'r'))
  try {
    for (const start of size > 2 * CHECKSUM_SPAN ? [0, size - CHECKSUM_SPAN] : [0]) {
      const bytes = new Uint8Array(Math.min(size > 2 * CHECKSUM_SPAN ? CHECKSUM_SPAN : size, size - start))
      let done = 0
      while (done < bytes.length) {
        const n = withFileContextSync('read', path, () => readSync(fd, bytes, done, bytes.length - done, start + done))
        if (n === 0) break
        done += n
      }
      hash.update(bytes.subarray(0, done))
    }
  } finally {
    closeSync(fd)
  }
  return hash.digest('hex')
}

/** Write the set of `spec` into the (new, empty) folder `dir`: weights.bin, then index.json. */
async function buildWeightSet(spec: WeightSetSpec, dir: string, options: PrepareOptions): Promise<void> {
  const modules = moduleSpecs(spec.dims)
  const groups = loraGroups(spec.dims, spec.fuse)
  const base = spec.basePath ? await BaseWeightSource.open(spec.basePath, spec.dims) : undefined
  const stacks: StackSource = spec.packPath ? await openPackStacks(spec.packPath, spec.dims, spec.adapters) : syntheticStacks(spec)
  const S = stacks.slots
  const R = stacks.rank
  let shared: SharedSource | undefined
  try {
    if (spec.include.shared) shared = spec.sharedBPath ? await openSharedBFile(spec.sharedBPath, spec.dims, spec.packPath!) : spec.packPath ? await compressPackShared(spec.packPath, spec.dims, spec.sharedK) : syntheticShared(spec.dims, S, spec.sharedK, spec.seed)
  } catch (error) {
    await base?.close()
    await stacks.close()
    throw error
  }
  const file = ExternalDataFile.create(join(dir, WeightSet.DATA_FILE))
  const tensors: WeightSetInfo['tensors'] = {}
  const plan: Array<{name: string; dims: number[]; type?: 'float16'; fill: (write: (elementOffset: number, data: Float32Array) => void) => Promise<void> | void}> = []
  /** The element type of the stacks and A' (the base, norms and shared B stay f32). */
  const stackType = spec.stackDtype === 'f16' ? ({type: 'float16'} as const) : {}

  for (const m of modules) {
    plan.push({name: layoutNames.weight(m), dims: [m.in, m.out], fill: (w) => (base ? base.writeTransposed(m, w) : fillSynthetic(w, m.in * m.out, 1 / Math.sqrt(m.in), spec.seed, 'W', m.key))})
  }
  const layers = spec.dims.model === 'layer' ? 0 : spec.dims.layers
  for (let layer = 0; layer < layers; layer++) {
    for (const which of [1, 2] as const) {
      plan.push({name: layoutNames.norm(layer, which), dims: [spec.dims.hidden], fill: (w) => (base ? base.writeNorm(layer, which, w) : fillNorm(w, spec.dims.hidden, spec.seed, layer, which))})
    }
  }
  if (spec.include.stacks) {
    for (const g of groups) {
      plan.push({name: layoutNames.groupA(g), dims: [S, g.members.length * R, g.in], ...stackType, fill: (w) => stacks.writeGroupA(g, w)})
      for (const m of g.members) plan.push({name: layoutNames.moduleB(m), dims: [S, m.out, R], ...stackType, fill: (w) => stacks.writeModuleB(m, w)})
    }
  }
  if (shared) {
    const W = shared.width
    for (const g of groups) {
      plan.push({name: layoutNames.groupAk(g), dims: [S, g.members.length * W, g.in], ...stackType, fill: (w) => shared.writeGroupAk(g, w)})
      for (const m of g.members) plan.push({name: layoutNames.moduleBk(m), dims: [W, m.out], fill: (w) => shared.writeModuleBk(m, w)})
    }
  }
  const byteLength = (p: (typeof plan)[number]) => p.dims.reduce((a, b) => a * b, 1) * ELEM_BYTES[p.type ?? 'float32']
  const total = plan.reduce((sum, p) => sum + byteLength(p), 0)
  let done = 0
  try {
    // sparse preallocation would succeed and the writes fail later: the disk is checked first
    assertDiskFits([{path: dir, bytes: weightSetBytes(spec, R, shared?.width ?? spec.sharedK), what: 'the weight set'}], `bench --work-dir ${options.workDir}`)
    for (const p of plan) {
      const length = byteLength(p)
      const size = ELEM_BYTES[p.type ?? 'float32']
      const range = file.reserve(length)
      tensors[p.name] = {dims: p.dims, offset: range.offset, length, ...(p.type ? {type: p.type} : {})}
      await p.fill((elementOffset, data) => {
        if ((elementOffset + data.length) * size > length) throw new Error(`write ${p.name}: past its end`)
        // f16: rounded to nearest even once, here; every reader (graphs, reference) sees these values
        const bytes = p.type === 'float16' ? fromFloat('F16', data) : new Uint8Array(data.buffer, data.byteOffset, data.byteLength)
        file.write(range.offset + elementOffset * size, bytes)
        done += bytes.byteLength
        options.onProgress?.({stage: 'weights', done, total})
      })
    }
  } finally {
    file.close()
    await base?.close()
    await stacks.close()
    await shared?.close()
  }
  const dataPath = join(dir, WeightSet.DATA_FILE)
  const size = withFileContextSync('read', dataPath, () => statSync(dataPath).size)
  const data = {bytes: size, sha256: dataChecksum(dataPath, size)}
  const info: WeightSetInfo = {spec, slots: S, rank: R, tensors, slotRanks: stacks.slotRanks, shared: shared ? sharedInfo(shared, groups, S, spec.stackDtype === 'f16' ? 2 : 4) : null, data}
  const index = join(dir, 'index.json')
  withFileContextSync('write', index, () => writeFileSync(index, JSON.stringify(info)))
}

function validateSpec(spec: WeightSetSpec): void {
  if (!Number.isSafeInteger(spec.adapters) || spec.adapters < 1) throw new UsageError('BAD_FLAG', `--adapters must be a positive integer (got ${spec.adapters})`)
  if (spec.ranks.length === 0 || spec.ranks.some((r) => !Number.isSafeInteger(r) || r < 1)) throw new UsageError('BAD_FLAG', `--rank must be a positive integer (got ${spec.ranks.join(',')})`)
  if (!Number.isSafeInteger(spec.sharedK) || spec.sharedK < 1) throw new UsageError('BAD_FLAG', `--shared-k must be a positive integer (got ${spec.sharedK})`)
  if (spec.sharedBPath && !spec.packPath) throw new UsageError('BAD_FLAG', `--shared-b ${spec.sharedBPath} needs --pack (the lora-pack it was compressed from)`)
}

function sharedInfo(shared: SharedSource, groups: readonly GroupSpec[], slots: number, aBytes: number): SharedInfo {
  const W = shared.width
  let bytes = 0
  let paddingBytes = 0
  for (const g of groups) {
    for (const m of g.members) {
      const perK = slots * g.in * aBytes + m.out * 4
      bytes += W * perK
      paddingBytes += (W - shared.ranks[m.key]!) * perK
    }
  }
  return {kind: shared.kind, width: W, ranks: shared.ranks, errors: shared.errors(), paddingBytes, bytes, notes: shared.notes}
}

function fillNorm(write: (offset: number, data: Float32Array) => void, hidden: number, seed: number, layer: number, which: number): void {
  const rng = new Rng(seed, 'norm', layer, which)
  const v = new Float32Array(hidden)
  for (let i = 0; i < hidden; i++) v[i] = 1 + 0.02 * (rng.next() * 2 - 1)
  write(0, v)
}

/**
 * Declares weight-set tensors as external initializers of `g`, each once however
 * often it is used: `weight(name)` declares (the first time) and returns the name;
 * `declared` lists what was declared.
 */
export function externalWeights(g: GraphBuilder, set: WeightSet): {weight: (name: string) => string; declared: ReadonlySet<string>} {
  const declared = new Set<string>()
  const weight = (name: string) => {
    if (!declared.has(name)) {
      declared.add(name)
      g.external(name, set.tensor(name))
    }
    return name
  }
  return {weight, declared}
}
