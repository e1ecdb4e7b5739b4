/**
 * The first pass of `lora pack`: every adapter's config and safetensors
 * header, read a few at a time and taken in order, into what planning and
 * copying need. No tensor data is read.
 */
import {stat} from 'node:fs/promises'
import {InputError} from '../errors.js'
import {LoraAdapter, LoraModule} from '../formats/peft-adapter.js'
import {sanitizeName} from '../formats/safetensors-header.js'
import type {ProgressCallback} from '../progress.js'
import type {AdapterHeader} from './pack-plan.js'

/** Adapter headers read at once (their small reads overlap). */
export const HEADER_READ_AHEAD = 8

export type NamesFrom = 'dir' | 'config'

/** Where an adapter's LoRA tensors sit in its file. */
export interface SourceLayout {
  readonly path: string
  readonly size: number
  readonly mtimeMs: number
  /** Per module (in `AdapterHeader.modules` order): absolute byte ranges of A and B in the file. */
  readonly ranges: ReadonlyArray<{readonly a: readonly [number, number]; readonly b: readonly [number, number]}>
}

export interface AdapterHeaders {
  readonly headers: AdapterHeader[]
  readonly sources: SourceLayout[]
  /** Sum of the safetensors file sizes. */
  readonly bytes: number
  /** The adapters' own warnings, identical ones grouped. */
  readonly warnings: string[]
}

/** An adapter's name in the pack under `namesFrom`. */
function adapterName(adapter: LoraAdapter, namesFrom: NamesFrom): string {
  if (namesFrom === 'dir') return adapter.name
  const raw = adapter.config.raw
  const name = typeof raw.adapter_name === 'string' ? raw.adapter_name : typeof raw.name === 'string' ? raw.name : undefined
  if (name === undefined || name.length === 0) {
    throw new InputError('PACK_NO_CONFIG_NAME', `read ${adapter.dir}/adapter_config.json: no "adapter_name" or "name" string to take the adapter's name from (use --names-from dir)`)
  }
  return name
}

/**
 * A copy of `text` that does not share memory with a larger string. Names
 * parsed from a header are slices of the whole header text; keeping one
 * would keep that text alive, for every adapter of the pack.
 */
function detach(text: string): string {
  return JSON.parse(JSON.stringify(text)) as string
}

/** Read one adapter's config and header: what planning and copying need (and nothing more: it is kept for every adapter). */
async function readAdapter(dir: string, namesFrom: NamesFrom): Promise<{header: AdapterHeader; source: SourceLayout; bytes: number; warnings: readonly string[]}> {
  const adapter = await LoraAdapter.load(dir)
  try {
    const file = adapter.file
    const info = await stat(file.path)
    const start = (key: string) => file.info(key).dataOffsets[0]
    const modules: LoraModule[] = [...adapter.modules.values()]
      .sort((a, b) => start(a.aKey) - start(b.aKey))
      .map((m) => ({...m, name: detach(m.name), aKey: detach(m.aKey), bKey: detach(m.bKey)}))
    const range = (key: string): [number, number] => {
      const [begin, end] = file.info(key).dataOffsets
      return [file.dataStart + begin, file.dataStart + end]
    }
    const metadata: Record<string, string> = Object.create(null)
    for (const [k, v] of file.metadata) metadata[detach(k)] = detach(v)
    return {
      header: {name: adapterName(adapter, namesFrom), dir: adapter.dir, config: adapter.config, modules, extraTensors: adapter.extraTensors.map((t) => detach(t.name)), metadata},
      source: {path: file.path, size: file.bytes, mtimeMs: info.mtimeMs, ranges: modules.map((m) => ({a: range(m.aKey), b: range(m.bKey)}))},
      bytes: file.bytes,
      warnings: adapter.warnings,
    }
  } finally {
    await adapter.close()
  }
}

/** Group identical warnings of many adapters into one line each. */
function groupWarnings(perAdapter: ReadonlyArray<{name: string; warnings: readonly string[]}>): string[] {
  const groups = new Map<string, string[]>()
  for (const a of perAdapter) {
    for (const w of a.warnings) {
      if (/not LoRA pairs|modules_to_save wrapper/.test(w)) continue // reported once below, with what pack does about it
      const names = groups.get(w)
      if (names) names.push(a.name)
      else groups.set(w, [a.name])
    }
  }
  return [...groups].map(([w, names]) => `adapter "${sanitizeName(names[0]!)}"${names.length > 1 ? ` and ${names.length - 1} more` : ''}: ${w}`)
}

/**
 * Read the headers of the adapter folders `dirs`, in order.
 * @throws InputError for an adapter LoraAdapter.load refuses (missing files, DoRA, …) or two adapters with one name
 */
export async function readAdapterHeaders(dirs: readonly string[], namesFrom: NamesFrom, onProgress?: ProgressCallback): Promise<AdapterHeaders> {
  const headers: AdapterHeader[] = []
  const sources: SourceLayout[] = []
  const perAdapterWarnings: Array<{name: string; warnings: readonly string[]}> = []
  const names = new Map<string, string>()
  let bytes = 0
  // headers are read a few at a time (their small reads overlap), and taken in order
  const reading: Array<ReturnType<typeof readAdapter>> = []
  const readAhead = (i: number) => {
    if (i < dirs.length) {
      reading[i] = readAdapter(dirs[i]!, namesFrom)
      reading[i]!.catch(() => undefined)
    }
  }
  for (let i = 0; i < HEADER_READ_AHEAD; i++) readAhead(i)
  for (const [i] of dirs.entries()) {
    let read: Awaited<ReturnType<typeof readAdapter>>
    try {
      read = await reading[i]!
    } catch (error) {
      await Promise.allSettled(reading.slice(i + 1))
      throw error
    }
    delete reading[i]
    readAhead(i + HEADER_READ_AHEAD)
    const previous = names.get(read.header.name)
    if (previous !== undefined) {
      throw new InputError(
        'PACK_DUPLICATE_NAME',
        `pack: adapters ${previous} and ${read.header.dir} are both named "${sanitizeName(read.header.name)}" (names must be unique: rename a folder${namesFrom === 'dir' ? ' or use --names-from config' : ''})`,
      )
    }
    names.set(read.header.name, read.header.dir)
    headers.push(read.header)
    sources.push(read.source)
    perAdapterWarnings.push({name: read.header.name, warnings: read.warnings})
    bytes += read.bytes
    onProgress?.({stage: 'headers', done: i + 1, total: dirs.length})
  }

  return {headers, sources, bytes, warnings: groupWarnings(perAdapterWarnings)}
}
