/**
 * Error rows for issue 15's refusals: outputs that would destroy inputs or
 * what lora did not write, non-finite numbers, empty or inconsistent
 * adapters, resource bounds, non-regular files.
 */
import {accessSync, constants, mkdirSync, writeFileSync} from 'node:fs'
import {join} from 'node:path'
import {ErrorCase} from './fixtures.js'

/** A folder no one may write in (not even root: /proc/1 answers EPERM), or undefined where that does not hold. */
const UNWRITABLE = (() => {
  try {
    accessSync('/proc/1', constants.W_OK)
    return undefined
  } catch {
    return '/proc/1'
  }
})()

const synthArgs = ['--count', '1', '--hidden', '16', '--intermediate', '24', '--layers', '1', '--rank', '2']

export const SAFETY_CASES: ErrorCase[] = [
  // outputs (io/output-target.ts)
  {code: 'OUTPUT_IS_INPUT', exit: 2, input: 'pack --out the --list file it reads', cli: async (dir, fx) => (writeFileSync(join(dir, 'list.txt'), `${await fx.adapter()}\n`), ['pack', '--list', join(dir, 'list.txt'), '--out', join(dir, 'list.txt'), '--force'])},
  {code: 'OUTPUT_CONTAINS_INPUT', exit: 2, input: 'unpack --out the folder holding the pack, --force', cli: async (dir, fx) => ['unpack', await fx.pack(), '--slot', '1', '--out', join(await fx.pack(), '..'), '--force']},
  {code: 'OUTPUT_INSIDE_INPUT', exit: 2, input: 'merge --out inside the adapter folder', cli: async (dir, fx) => ['merge', '--base', await fx.base(), '--adapter', await fx.adapter(), '--out', join(await fx.adapter(), 'merged')]},
  {code: 'OUTPUTS_OVERLAP', exit: 2, input: 'merge --report inside --out', cli: async (dir, fx) => ['merge', '--base', await fx.base(), '--adapter', await fx.adapter(), '--out', join(dir, 'm'), '--report', join(dir, 'm', 'q.json')]},
  {code: 'OUTPUT_PARENT_NOT_FOLDER', exit: 2, input: 'pack --out regularfile/x', cli: async (dir, fx) => (writeFileSync(join(dir, 'f'), 'x'), ['pack', await fx.adapters(), '--out', join(dir, 'f', 'x.safetensors')])},
  {
    code: 'OUTPUT_NOT_WRITABLE',
    exit: 2,
    input: 'merge --report in a folder no one may write',
    cli: async (dir, fx) => ['merge', '--base', await fx.base(), '--adapter', await fx.adapter(), '--out', join(dir, 'm'), '--report', join(UNWRITABLE ?? dir, 'q.json')],
    ...(UNWRITABLE ? {} : {skip: '/proc/1 is writable here, and no other folder is unwritable for this user'}),
  },
  {code: 'OUTPUT_KIND_MISMATCH', exit: 2, input: 'pack --out an existing folder --force', cli: async (dir, fx) => (mkdirSync(join(dir, 'p.safetensors')), ['pack', await fx.adapters(), '--out', join(dir, 'p.safetensors'), '--force'])},
  {code: 'OUTPUT_NOT_REPLACEABLE', exit: 2, input: 'synth adapters --out a folder lora did not write, --force', cli: (dir) => (writeFileSync(join(dir, 'notes.txt'), 'x'), ['synth', 'adapters', '--out', dir, ...synthArgs, '--force'])},
]
