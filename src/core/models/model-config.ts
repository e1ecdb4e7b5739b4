/**
 * The Hugging Face `config.json` beside a model's weights, when there is one.
 */
import {readFile} from 'node:fs/promises'
import {join} from 'node:path'
import {InputError} from '../errors.js'

/**
 * Read `<folder>/config.json`.
 * @returns the parsed object and its path, or undefined when the folder has none (or there is no folder)
 * @throws InputError CONFIG_INVALID when it is there but not a JSON object
 */
export async function readModelConfig(folder: string | undefined): Promise<{config: Record<string, unknown>; file: string} | undefined> {
  if (!folder) return undefined
  const file = join(folder, 'config.json')
  let text: string
  try {
    text = await readFile(file, 'utf8')
  } catch {
    return undefined
  }
  let config: unknown
  try {
    config = JSON.parse(text)
  } catch {
    throw new InputError('CONFIG_INVALID', `read ${file}: not valid JSON`)
  }
  if (typeof config !== 'object' || config === null || Array.isArray(config)) throw new InputError('CONFIG_INVALID', `read ${file}: not a JSON object`)
  return {config: config as Record<string, unknown>, file}
}
