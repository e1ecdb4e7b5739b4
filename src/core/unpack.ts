/**
 * `lora unpack`: one adapter of a packed file back to a PEFT adapter folder,
 * whatever the packed format: `detect` names it and the table below picks
 * the unpacker (`pack/unpack.ts` for a `lora-pack`, `compress/unpack-shared-b.ts`
 * for a `lora-pack-shared-b`). A file of any other kind goes to the
 * `lora-pack` reader, whose error says what it is not.
 */
import {FileKind, detect} from './formats/detect.js'
import {unpackSharedB} from './compress/unpack-shared-b.js'
import {UnpackOptions, UnpackResult, assertOneAdapter, unpackPack} from './pack/unpack.js'

export type {UnpackOptions, UnpackResult}

/** The unpacker of each packed kind. */
const UNPACKERS: Partial<Record<FileKind, (options: UnpackOptions) => Promise<UnpackResult>>> = Object.freeze({
  pack: unpackPack,
  'shared-b': unpackSharedB,
})

/**
 * Write adapter `adapter` (or `slot`) of packed file `file` as a PEFT folder `out`.
 * @throws UsageError unless exactly one of `adapter` / `slot` is given, or when `out` exists without `force`
 * @throws InputError for a file that is no pack, a malformed one, or an unknown adapter / slot
 */
export async function unpackAdapter(options: UnpackOptions): Promise<UnpackResult> {
  assertOneAdapter(options)
  const kind = await detect(options.file).catch(() => undefined)
  return ((kind && UNPACKERS[kind]) || unpackPack)(options)
}
