/**
 * Loaded with `node --import` into a `lora` process by the fault tests: the
 * process kills itself with SIGKILL at its first rename, which is where an
 * output is complete under its temporary name and about to move into place
 * (the most a crash can leave behind). Deterministic: no timing involved.
 */
import fs from 'node:fs'
import fsp from 'node:fs/promises'
import {syncBuiltinESMExports} from 'node:module'

const kill = (): never => {
  process.kill(process.pid, 'SIGKILL')
  throw new Error('unreachable')
}
fs.renameSync = kill
fs.rename = kill as unknown as typeof fs.rename
fsp.rename = async () => kill()
syncBuiltinESMExports()
