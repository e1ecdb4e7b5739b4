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
import {createWorkFolder} from '../io/temporaries.js'
import {packAdapters} from '../pack/pack-adapters.js'
import {resolveAdapterInputs} from '../pack/resolve-inputs.js'
import {PackFile} from '../formats/pack-file.js'
import type {ProgressCallback} from '../progress.js'

/** The input resolved: one lora-pack file, or the adapter folders to pack first. */
export type CompressInput = {kind: 'pack'; path: string; label: string} | {kind: 'adapters'; dirs: string[]; label: string}

/** The open input pack, and how to let it go. */
export interface OpenInput {
  pack: PackFile
  label: string
  warnings: string[]
  close(): Promise<void>
}

/**
 * What the inputs are, without reading more than a header: a `lora-pack`
 * file, or adapter folders (globs and folders of adapters expanded).
 * @throws InputError for no input, a shared-B file, a file that is no pack
 */
export async function resolveCompressInput(options: {inputs: readonly string[]; cwd?: string}): Promise<CompressInput> {
  const cwd = resolve(options.cwd ?? process.cwd())
  const inputs = options.inputs
  if (inputs.length === 0) throw new InputError('COMPRESS_NO_INPUT', 'compress: give a lora-pack file or adapter folders')
  const first = resolve(cwd, inputs[0]!)
  const isFile = inputs.length === 1 && (await stat(first).then((s) => !s.isDirectory(), () => false))
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
    return {kind: 'pack', path: first, label: first}
  }
  const dirs = await resolveAdapterInputs({inputs, cwd})
  return {kind: 'adapters', dirs, label: inputs.length === 1 ? first : `${inputs.length} inputs`}
}

/**
 * The input as an open pack: a `lora-pack` file as is; adapter folders
 * packed first into a temporary work folder in `scratch` (named with this
 * process's PID; removed on close, on exit, or by a later run once stale).
 */
export async function openInput(input: CompressInput, scratch: string, onProgress?: ProgressCallback): Promise<OpenInput> {
  if (input.kind === 'pack') {
    const pack = await PackFile.open(input.path)
    try {
      await pack.checkNullSlot()
    } catch (error) {
      await pack.close()
      throw error
    }
    return {pack, label: input.label, warnings: [], close: () => pack.close()}
  }
  const work = await createWorkFolder(scratch, 'compress-input', {hidden: true})
  const discard = () => work.remove()
  try {
    const packed = await packAdapters({inputs: input.dirs, out: join(work.path, 'input.safetensors'), onProgress})
    const pack = await PackFile.open(packed.out)
    return {
      pack,
      label: input.label,
      warnings: packed.warnings,
      close: async () => {
        await pack.close()
        await discard()
      },
    }
  } catch (error) {
    await discard()
    throw error
  }
}
