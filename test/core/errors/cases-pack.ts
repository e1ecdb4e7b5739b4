/**
 * Error rows for pack, unpack and compress: inputs, pack files, shared-B files.
 */
import {appendFileSync, mkdirSync, writeFileSync} from 'node:fs'
import {join} from 'node:path'
import {chooseSharedRank} from '../../../src/core/demo/choose-rank.js'
import {moduleSourceFromInput} from '../../../src/core/compress/module-source.js'
import {validateSelection} from '../../../src/core/compress/rank-selection.js'
import {resolveCompressInput} from '../../../src/core/compress/open-input.js'
import {packAdapters} from '../../../src/core/pack/pack-adapters.js'
import {PackFile} from '../../../src/core/formats/pack-file.js'
import {unpackAdapter} from '../../../src/core/unpack.js'
import {sweepReport} from '../../helpers/compress-fixtures.js'
import {ErrorCase, Fixtures, alterSt, closing, lora, writeAdapter} from './fixtures.js'

type Alter = Parameters<typeof alterSt>[2]

/** `lora unpack` of an altered copy of the pack (or of its shared-B file). */
const unpackAltered = (of: 'pack' | 'sharedB', edit: Alter) => async (dir: string, fx: Fixtures) => [
  'unpack',
  alterSt(await (of === 'pack' ? fx.pack() : fx.sharedB()), join(dir, 'x.safetensors'), edit),
  '--slot',
  '1',
  '--out',
  join(dir, 'out'),
]

/** Two adapter folders with one module each, the second with `other` changed. */
const twoAdapters = (dir: string, other: {module?: [number, number]; config?: Record<string, unknown>; dtype?: string} = {}) => [
  writeAdapter(join(dir, 'a'), lora('m', 2, 4, 4)),
  writeAdapter(join(dir, 'b'), lora('m', 2, ...(other.module ?? [4, 4]), other.dtype ?? 'F32'), other.config),
]

export const PACK_CASES: ErrorCase[] = [
  // pack inputs
  {code: 'PACK_NO_INPUT', exit: 2, input: 'pack --out FILE and no adapters', cli: (dir) => ['pack', '--out', join(dir, 'p.safetensors')]},
  {code: 'PACK_GLOB_NO_MATCH', exit: 2, input: 'a glob that matches nothing', cli: (dir) => ['pack', join(dir, 'nothing-*'), '--out', join(dir, 'p.safetensors')]},
  {code: 'PACK_BAD_GLOB', exit: 2, input: 'the glob class [z-a]', cli: (dir) => ['pack', join(dir, '[z-a]'), '--out', join(dir, 'p.safetensors')]},
  {code: 'PACK_BAD_LIST', exit: 2, input: '--list FILE naming no adapter', cli: (dir) => (writeFileSync(join(dir, 'list.txt'), '# nothing\n'), ['pack', '--list', join(dir, 'list.txt'), '--out', join(dir, 'p.safetensors')])},
  {code: 'PACK_NOT_AN_ADAPTER', exit: 2, input: 'an empty folder', cli: (dir) => (mkdirSync(join(dir, 'empty')), ['pack', join(dir, 'empty'), '--out', join(dir, 'p.safetensors')])},
  {code: 'PACK_DUPLICATE_ADAPTER', exit: 2, input: 'one adapter given twice', cli: async (dir, fx) => ['pack', await fx.adapter(), await fx.adapter(), '--out', join(dir, 'p.safetensors')]},
  {
    code: 'PACK_DUPLICATE_NAME',
    exit: 2,
    input: 'two folders both named "m"',
    cli: (dir) => ['pack', writeAdapter(join(dir, 'x/m'), lora('m', 2, 4, 4)), writeAdapter(join(dir, 'y/m'), lora('m', 2, 4, 4)), '--out', join(dir, 'p.safetensors')],
  },
  {code: 'PACK_NO_CONFIG_NAME', exit: 2, input: '--names-from config, no adapter_name in the config', cli: (dir) => ['pack', ...twoAdapters(dir), '--names-from', 'config', '--out', join(dir, 'p.safetensors')]},
  {code: 'PACK_MIXED_BASE', exit: 2, input: 'base_model_name_or_path "x" and null', cli: (dir) => ['pack', ...twoAdapters(dir, {config: {base_model_name_or_path: 'x'}}), '--out', join(dir, 'p.safetensors')]},
  {code: 'PACK_NOT_FLOAT', exit: 2, input: 'a module stored as I8', cli: (dir) => ['pack', ...twoAdapters(dir, {dtype: 'I8'}), '--out', join(dir, 'p.safetensors')]},
  {code: 'PACK_DIMS_MISMATCH', exit: 2, input: 'module "m" [4, 4] in one adapter, [4, 8] in the other', cli: (dir) => ['pack', ...twoAdapters(dir, {module: [4, 8]}), '--out', join(dir, 'p.safetensors')]},
  {
    code: 'PACK_SOURCE_CHANGED',
    exit: 2,
    input: 'an adapter file that grows between reading the headers and copying',
    core: (dir) => {
      const [a, b] = twoAdapters(dir)
      return packAdapters({
        inputs: [a!, b!],
        out: join(dir, 'p.safetensors'),
        onProgress: (p) => {
          if (p.stage === 'headers' && p.done === p.total) appendFileSync(join(b!, 'adapter_model.safetensors'), 'xx')
        },
      })
    },
  },
  {code: 'PACK_HEADER_TOO_LARGE', exit: 2, input: 'a pack whose manifest passes 100 MB', skip: 'needs a manifest over the 100 MB header limit (hundreds of thousands of adapters): too big for a test, and the limit has no seam'},
  {code: 'OUTPUT_EXISTS', exit: 2, input: 'pack --out an existing file', cli: async (dir, fx) => (writeFileSync(join(dir, 'p.safetensors'), 'x'), ['pack', await fx.adapters(), '--out', join(dir, 'p.safetensors')])},

  // pack files, through `lora unpack`
  {code: 'UNPACK_WHICH', exit: 2, input: 'unpackAdapter with neither adapter nor slot (the command requires exactly one flag first)', core: async (dir, fx) => unpackAdapter({file: await fx.pack(), out: join(dir, 'u')})},
  {code: 'PACK_NO_SUCH_SLOT', exit: 2, input: 'unpack --slot 9 of 3 adapters', cli: async (dir, fx) => ['unpack', await fx.pack(), '--slot', '9', '--out', join(dir, 'u')]},
  {code: 'PACK_NO_SUCH_ADAPTER', exit: 2, input: 'unpack --adapter nope', cli: async (dir, fx) => ['unpack', await fx.pack(), '--adapter', 'nope', '--out', join(dir, 'u')]},
  {code: 'PACK_NOT_A_PACK', exit: 2, input: 'a pack whose format is "pt"', cli: unpackAltered('pack', (f) => void (f.metadata.format = 'pt'))},
  {code: 'PACK_UNSUPPORTED_VERSION', exit: 2, input: 'format_version "9"', cli: unpackAltered('pack', (f) => void (f.metadata.format_version = '9'))},
  {code: 'PACK_BAD_MANIFEST', exit: 2, input: 'manifest "{"', cli: unpackAltered('pack', (f) => void (f.metadata.manifest = '{'))},
  {code: 'PACK_TENSOR_MISSING', exit: 2, input: 'the first tensor removed', cli: unpackAltered('pack', (f) => void f.tensors.shift())},
  {code: 'PACK_TENSOR_MISMATCH', exit: 2, input: 'the first tensor one element longer', cli: unpackAltered('pack', (f) => (f.tensors[0] = {...f.tensors[0]!, shape: [...f.tensors[0]!.shape.slice(0, -1), f.tensors[0]!.shape.at(-1)! + 1], data: undefined}))},
  {code: 'PACK_TENSOR_UNEXPECTED', exit: 2, input: 'an extra tensor', cli: unpackAltered('pack', (f) => void f.tensors.push({name: 'extra', dtype: 'U8', shape: [1]}))},
  {code: 'PACK_MODULE_NOT_FOUND', exit: 2, input: 'asking a pack for a module it does not have', core: async (_dir, fx) => closing(PackFile.open(await fx.pack()), (p) => p.module('nope'))},

  // shared-B files
  {code: 'SHARED_B_UNSUPPORTED_VERSION', exit: 2, input: 'a shared-B file with format_version "9"', cli: unpackAltered('sharedB', (f) => void (f.metadata.format_version = '9'))},
  {code: 'SHARED_B_BAD_METADATA', exit: 2, input: 'a shared-B file without __metadata__.errors', cli: unpackAltered('sharedB', (f) => void delete f.metadata.errors)},
  {code: 'SHARED_B_NOT_ONE', exit: 2, input: 'bench --shared-b naming a plain pack', cli: async (_dir, fx) => ['bench', '--pack', await fx.pack(), '--shared-b', await fx.pack(), '--rounds', '1', '--steps', '1', '--batch', '2']},

  // compress
  {code: 'COMPRESS_NO_SELECTION', exit: 2, input: 'compress PACK --out FILE without --rank, --max-error or --savings', cli: async (dir, fx) => ['compress', await fx.pack(), '--out', join(dir, 'c.safetensors')]},
  {code: 'COMPRESS_NO_OUT', exit: 2, input: 'compress PACK --rank 1 without --out', cli: async (_dir, fx) => ['compress', await fx.pack(), '--rank', '1']},
  {code: 'COMPRESS_BAD_RANK', exit: 2, input: 'a selection of rank 0 (the --rank flag refuses it first: BAD_FLAG)', core: () => validateSelection({rank: 0})},
  {code: 'COMPRESS_RANK_TOO_LARGE', exit: 2, input: '--rank 99 for 16 outputs', cli: async (dir, fx) => ['compress', await fx.pack(), '--rank', '99', '--out', join(dir, 'c.safetensors')]},
  {code: 'COMPRESS_BAD_MAX_ERROR', exit: 2, input: 'a selection of max error 1.5 (the flag refuses it first)', core: () => validateSelection({maxError: 1.5})},
  {code: 'COMPRESS_BAD_SAVINGS', exit: 2, input: 'a selection of 100% savings (the flag refuses it first)', core: () => validateSelection({savings: 100})},
  {code: 'COMPRESS_SAVINGS_UNREACHABLE', exit: 2, input: '--savings 99', cli: async (dir, fx) => ['compress', await fx.pack(), '--savings', '99', '--out', join(dir, 'c.safetensors')]},
  {code: 'COMPRESS_MAX_ERROR_UNREACHABLE', exit: 2, input: '--max-error 1e-9 stored in bf16', cli: async (dir, fx) => ['compress', await fx.pack(), '--max-error', '1e-9', '--dtype', 'bf16', '--out', join(dir, 'c.safetensors')]},
  {code: 'COMPRESS_BAD_INPUT', exit: 2, input: 'compress an adapter_model.safetensors', cli: async (dir, fx) => ['compress', join(await fx.adapter(), 'adapter_model.safetensors'), '--rank', '1', '--out', join(dir, 'c.safetensors')]},
  {code: 'COMPRESS_ALREADY_COMPRESSED', exit: 2, input: 'compress a shared-B file', cli: async (dir, fx) => ['compress', await fx.sharedB(), '--rank', '1', '--out', join(dir, 'c.safetensors')]},
  {code: 'COMPRESS_NO_INPUT', exit: 2, input: 'resolveCompressInput with no inputs (the command needs an argument first)', core: () => resolveCompressInput({inputs: []})},
  {code: 'COMPRESS_EMPTY_MODULE', exit: 2, input: 'a module source with no adapters', core: () => moduleSourceFromInput({name: 'm', in: 4, out: 4, adapters: []})},
  {code: 'COMPRESS_HEADER_TOO_LARGE', exit: 2, input: 'per-slot errors that pass the 100 MB header limit', skip: 'needs a header over 100 MB (millions of module × slot errors): too big for a test, and the limit has no seam'},
  {
    code: 'DEMO_NO_SAVING_K',
    exit: 2,
    input: "a sweep in which no K saves bytes (the demo's own adapters always save)",
    core: () => chooseSharedRank(sweepReport([[64, -1.5, 0.1]]), 0.2),
  },
]
