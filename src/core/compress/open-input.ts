/**
 * The input of `lora compress` as an open `lora-pack`: a pack file as is,
 * adapter folders or globs packed first (with `lora pack`'s rules) into a
 * temporary pack that is removed on close (and on exit).
 */
import {stat} from 'node:fs/promises'
import {join, resolve} from 'node:path'
import {InputError, LoraError} from '../errors.js'
import {FileKind, fileFormat, kindOf, probePath} from '../formats/detect.js'
import {sanitizeName} from '../formats/safetensors-header.js'
import {AtomicDirectory} from '../io/atomic-output.js'
import {packAdapters} from '../pack/pack-adapters.js'
import {PackFile} from '../formats/pack-file.js'
import type {ProgressCallback} from '../progress.js'

/** The open input pack, and how to let it go. */
export interface OpenInput {
  pack: PackFile
  label: string
  warnings: string[]
  close(): Promise<void>
}

/**
 * The input as an open pack: a `lora-pack` file as is; adapter folders or
 * globs packed first into a temporary pack (in `scratch`, removed on close).
 */
export async function openInput(options: {inputs: readonly string[]; cwd?: string; onProgress?: ProgressCallback}, scratch: string): Promise<OpenInput> {
  const cwd = resolve(options.cwd ?? process.cwd())
  const inputs = options.inputs
  if (inputs.length === 0) throw new InputError('COMPRESS_NO_INPUT', 'compress: give a lora-pack file or adapter folders')
  const first = resolve(cwd, inputs[0]!)
  const isFile = inputs.length === 1 && (await stat(first).then((s) => s.isFile(), () => false))
  if (isFile) {
    const probe = await probePath(first)
    let kind: FileKind
    try {
      kind = await kindOf(probe)
    } catch (error) {
      if (error instanceof LoraError) throw new InputError('COMPRESS_BAD_INPUT', `compress ${inputs[0]}: neither a lora-pack file nor an adapter folder (${error.message})`, {cause: error})
      throw error
    }
    if (kind === 'shared-b') throw new InputError('COMPRESS_ALREADY_COMPRESSED', `compress ${inputs[0]}: already a lora-pack-shared-b file (compress the lora-pack it came from instead)`)
    if (kind === 'safetensors') {
      const format = (await probe.safetensorsMetadata())?.get('format')
      throw new InputError('COMPRESS_BAD_INPUT', `compress ${inputs[0]}: neither a lora-pack file nor an adapter folder (a safetensors file whose __metadata__.format is ${format === undefined ? 'absent' : `"${sanitizeName(format, 40)}"`})`)
    }
    if (kind !== 'pack') throw new InputError('COMPRESS_BAD_INPUT', `compress ${inputs[0]}: neither a lora-pack file nor an adapter folder (${fileFormat(kind).label})`)
    const pack = await PackFile.open(first)
    return {pack, label: first, warnings: [], close: () => pack.close()}
  }
  // Adapter folders: pack them into a temporary folder that is removed afterwards (and on exit).
  const temp = await AtomicDirectory.create(join(scratch, `.lora-compress-input-${process.pid}`), {force: true})
  try {
    const packed = await packAdapters({inputs, out: join(temp.path, 'input.safetensors'), cwd, onProgress: options.onProgress})
    const pack = await PackFile.open(packed.out)
    return {
      pack,
      label: inputs.length === 1 ? resolve(cwd, inputs[0]!) : `${inputs.length} inputs`,
      warnings: packed.warnings,
      close: async () => {
        await pack.close()
        await temp.abort()
      },
    }
  } catch (error) {
    await temp.abort()
    throw error
  }
}

