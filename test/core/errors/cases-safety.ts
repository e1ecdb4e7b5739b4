/**
 * Error rows for issue 15's refusals: outputs that would destroy inputs or
 * what lora did not write, non-finite numbers, empty or inconsistent
 * adapters, resource bounds, non-regular files.
 */
import {accessSync, constants, cpSync, mkdirSync, readFileSync, symlinkSync, writeFileSync} from 'node:fs'
import {join} from 'node:path'
import {ErrorCase, Fixtures, alterSt, lora, writeAdapter} from './fixtures.js'

/** A copy of the fixture adapter with its config's fields replaced. */
async function adapterWith(dir: string, fx: Fixtures, patch: Record<string, unknown>): Promise<string> {
  const to = join(dir, 'ad')
  cpSync(await fx.adapter(), to, {recursive: true})
  const config = JSON.parse(readFileSync(join(to, 'adapter_config.json'), 'utf8'))
  writeFileSync(join(to, 'adapter_config.json'), JSON.stringify({...config, ...patch}))
  return to
}

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

  // non-finite numbers
  {
    code: 'PACK_NULL_SLOT_NOT_ZERO',
    exit: 2,
    input: 'inspect a pack whose slot 0 holds a value',
    cli: async (dir, fx) => [
      'inspect',
      alterSt(await fx.pack(), join(dir, 'p.safetensors'), (f) => {
        const a = f.tensors.find((t) => t.name.endsWith('lora_A'))!
        a.data = Uint8Array.from(a.data!)
        new DataView(a.data.buffer).setFloat32(0, 0.5, true)
      }),
    ],
  },
  {code: 'MERGE_SCALE_OVERFLOW', exit: 2, input: 'merge an adapter of lora_alpha 3e38 with --weight 1000', cli: async (dir, fx) => ['merge', '--base', await fx.base(), '--adapter', await adapterWith(dir, fx, {lora_alpha: 3e38}), '--weight', '1000', '--out', join(dir, 'm')]},
  {code: 'OUTPUT_NOT_FINITE', exit: 2, input: 'merge an adapter of lora_alpha 3e8 into f16 (past 65504)', cli: async (dir, fx) => ['merge', '--base', await fx.base(), '--adapter', await adapterWith(dir, fx, {lora_alpha: 3e8}), '--dtype', 'f16', '--out', join(dir, 'm')]},

  {code: 'COMPRESS_GROWS', exit: 2, input: 'compress at K = 8 of rank-2 adapters (larger than the pack)', cli: async (dir, fx) => ['compress', await fx.pack(), '--rank', '8', '--out', join(dir, 'c.safetensors')]},

  // resource bounds (io/resources.ts)
  {code: 'NOT_ENOUGH_DISK', exit: 2, input: 'bench --adapters 1000000000 (1.4 PB of weights)', cli: (dir) => ['bench', '--adapters', '1000000000', '--work-dir', dir]},
  {code: 'NOT_ENOUGH_MEMORY', exit: 2, input: 'bench --batch 1000000000 (an input of 1.9 TB)', cli: (dir) => ['bench', '--batch', '1000000000', '--work-dir', dir]},

  // system errors that name their path
  {code: 'IO_ELOOP', exit: 2, input: 'an adapter_model.safetensors that links to itself', cli: (dir) => (mkdirSync(join(dir, 'ad')), writeFileSync(join(dir, 'ad', 'adapter_config.json'), '{"r": 2}'), symlinkSync(join(dir, 'ad', 'adapter_model.safetensors'), join(dir, 'ad', 'adapter_model.safetensors')), ['inspect', join(dir, 'ad')])},
  {code: 'IO_ENAMETOOLONG', exit: 2, input: 'inspect a path with a 300-character name', cli: (dir) => ['inspect', join(dir, 'x'.repeat(300))]},

  // empty or inconsistent adapters
  {code: 'ADAPTER_EMPTY', exit: 2, input: 'an adapter file holding a base model\'s tensors', cli: (dir) => ['inspect', writeAdapter(join(dir, 'ad'), [{name: 'model.embed_tokens.weight', dtype: 'F32', shape: [4, 4]}])]},
  {code: 'ADAPTER_UNTARGETED_TENSORS', exit: 2, input: 'LoRA tensors of module "m" with target_modules ["q_proj"]', cli: (dir) => ['inspect', writeAdapter(join(dir, 'ad'), lora('m', 2, 4, 4), {target_modules: ['q_proj']})]},
  {code: 'ADAPTER_BAD_SCALING', exit: 2, input: 'lora_alpha 0', cli: (dir) => ['inspect', writeAdapter(join(dir, 'ad'), lora('m', 2, 4, 4), {lora_alpha: 0})]},
  {code: 'OUTPUT_NOT_REPLACEABLE', exit: 2, input: 'synth adapters --out a folder lora did not write, --force', cli: (dir) => (writeFileSync(join(dir, 'notes.txt'), 'x'), ['synth', 'adapters', '--out', dir, ...synthArgs, '--force'])},
]
