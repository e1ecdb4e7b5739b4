/** Whether anything (file, folder, link target) exists at a path. */
import {stat} from 'node:fs/promises'

export async function pathExists(path: string): Promise<boolean> {
  try {
    await stat(path)
    return true
  } catch {
    return false
  }
}
