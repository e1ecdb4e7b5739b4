/**
 * What a file format declares so that `detect` (formats/detect.ts) can tell
 * it from the others: a kind name and a test on a cheap probe of the path.
 * Each format file exports one `FileFormat`; the registry in `detect.ts`
 * lists them once, most specific first.
 */

/** A path, looked at just enough to tell formats apart (every read is lazy and done once). */
export interface FormatProbe {
  /** The path as given. */
  readonly path: string
  /** A folder's entry names; undefined for a file. */
  readonly entries: readonly string[] | undefined
  /** A file's first bytes (up to 16; fewer for a shorter file); empty for a folder. */
  head(): Promise<Uint8Array>
  /**
   * The safetensors `__metadata__` of the file, or of the folder's model file
   * (chosen as `openModel` does); undefined for a shard index.
   * @throws InputError when that file is not a readable safetensors file, or a folder holds no model
   */
  safetensorsMetadata(): Promise<ReadonlyMap<string, string> | undefined>
}

/** One on-disk format, as `detect` sees it. */
export interface FileFormat<K extends string = string> {
  /** The kind `detect` returns. */
  readonly kind: K
  /** In words, for messages (`a lora-pack file`). */
  readonly label: string
  /** Whether the probed path is in this format (formats listed before it did not match). */
  matches(probe: FormatProbe): Promise<boolean>
}
