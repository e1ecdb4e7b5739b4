/** The tool's name and version, as `package.json` states them (written into every output's metadata). */
import {readFileSync} from 'node:fs'

export const TOOL_NAME = 'lora-toolkit'

let cached: string | undefined

/** `package.json`'s version (`0.0.0` if it cannot be read). */
export function toolVersion(): string {
  if (cached === undefined) {
    try {
      // dist/src/core/version.js → the package root
      const pkg = JSON.parse(readFileSync(new URL('../../../package.json', import.meta.url), 'utf8')) as {version?: unknown}
      cached = typeof pkg.version === 'string' ? pkg.version : '0.0.0'
    } catch {
      cached = '0.0.0'
    }
  }
  return cached
}
