/**
 * Error rows for bench: bases, packs and shared-B files given to it, its
 * gates and baselines, providers, and the graph and weight files it builds.
 */
import {truncateSync, writeFileSync} from 'node:fs'
import {join} from 'node:path'
import {prepareWeightSet} from '../../../src/core/serve/weights/weight-set.js'
import {GraphBuilder} from '../../../src/core/onnx/graph-builder.js'
import {probeProvider} from '../../../src/core/onnx/session.js'
import {runCli} from '../../helpers/index.js'
import {ErrorCase, Fixtures, RawTensor, lora, must, writeAdapter, writeSt} from './fixtures.js'

/** The smallest bench run: one linear layer, hidden 8, 2 requests, one round of one step. */
const TINY = ['--rounds', '1', '--steps', '1', '--batch', '2']
const LAYER = ['bench', '--model', 'layer', '--hidden', '8', '--adapters', '2', '--strategies', 'gather', ...TINY]

const w = (name: string, shape: number[]): RawTensor => ({name, dtype: 'F32', shape})
/** `lora bench --base` of a safetensors file with these weights. */
const benchBase = (tensors: RawTensor[], ...extra: string[]) => (dir: string) => ['bench', '--base', writeSt(join(dir, 'base.safetensors'), tensors), '--layers', '1', '--adapters', '2', '--strategies', 'base', ...TINY, ...extra]
const LAYER0 = 'model.layers.0'

/** `lora bench --pack` of a pack of two hand-made adapters with these modules. */
const benchPack = (modules: Array<[string, number, number]>, ...extra: string[]) => async (dir: string) => {
  const tensors = modules.flatMap(([m, inF, outF]) => lora(m, 2, inF, outF))
  const dirs = [writeAdapter(join(dir, 'a'), tensors), writeAdapter(join(dir, 'b'), tensors)]
  await must(['pack', ...dirs, '--out', join(dir, 'p.safetensors')])
  return ['bench', '--pack', join(dir, 'p.safetensors'), ...TINY, ...extra]
}

const cuda = await probeProvider('cuda')

export const BENCH_CASES: ErrorCase[] = [
  {code: 'TOLERANCE_EXCEEDED', exit: 1, input: 'bench --tolerance 1e-15', cli: () => [...LAYER, '--tolerance', '1e-15']},
  {
    code: 'REGRESSION',
    exit: 1,
    input: 'a baseline in which gather ran 1000× faster than base',
    cli: async (dir) => {
      // a report of this very configuration, with gather 1000× faster
      const report = JSON.parse((await runCli([...LAYER, '--json'])).stdout)
      report.results = [{strategy: 'gather', adapters: 2, relative_to_base: 1000}]
      writeFileSync(join(dir, 'old.json'), JSON.stringify(report))
      return [...LAYER, '--baseline', join(dir, 'old.json')]
    },
  },
  {
    code: 'BASELINE_MISMATCH',
    exit: 2,
    input: 'a baseline measured at another --batch',
    cli: async (dir) => {
      const report = JSON.parse((await runCli([...LAYER, '--json'])).stdout)
      report.config.batch = 64
      writeFileSync(join(dir, 'old.json'), JSON.stringify(report))
      return [...LAYER, '--baseline', join(dir, 'old.json')]
    },
  },
  {code: 'BASELINE_UNREADABLE', exit: 2, input: '--baseline naming no file', cli: (dir) => [...LAYER, '--baseline', join(dir, 'nope.json')]},
  {code: 'BASELINE_NOT_JSON', exit: 2, input: '--baseline of "{"', cli: (dir) => (writeFileSync(join(dir, 'old.json'), '{'), [...LAYER, '--baseline', join(dir, 'old.json')])},
  {code: 'BASELINE_BAD_SHAPE', exit: 2, input: '--baseline of {}', cli: (dir) => (writeFileSync(join(dir, 'old.json'), '{}'), [...LAYER, '--baseline', join(dir, 'old.json')])},
  {
    code: 'EP_UNAVAILABLE',
    exit: 2,
    input: 'bench --ep cuda where cuda does not initialize',
    cli: () => [...LAYER, '--ep', 'cuda'],
    ...(cuda.ok ? {skip: 'cuda initializes on this machine'} : {}),
  },

  // --base
  {code: 'BASE_NOT_LLAMA', exit: 2, input: 'a base without q_proj and gate_proj', cli: benchBase([w('w.weight', [4, 4])])},
  {code: 'BASE_SHAPE_MISMATCH', exit: 2, input: 'q_proj [8, 4]', cli: benchBase([w(`${LAYER0}.self_attn.q_proj.weight`, [8, 4]), w(`${LAYER0}.mlp.gate_proj.weight`, [12, 4])])},
  {code: 'BASE_DIMS_MISMATCH', exit: 2, input: '--hidden 16 for a base of hidden 8', cli: benchBase([w(`${LAYER0}.self_attn.q_proj.weight`, [8, 8]), w(`${LAYER0}.mlp.gate_proj.weight`, [12, 8])], '--hidden', '16')},
  {code: 'BASE_TENSOR_MISSING', exit: 2, input: 'a base with q_proj and gate_proj only', cli: benchBase([w(`${LAYER0}.self_attn.q_proj.weight`, [8, 8]), w(`${LAYER0}.mlp.gate_proj.weight`, [12, 8])])},

  // --pack and --shared-b
  {code: 'PACK_NOT_LLAMA', exit: 2, input: 'a pack of a BERT encoder\'s modules (no decoder block the bench knows)', cli: benchPack([['bert.encoder.layer.0.attention.self.query', 8, 8]])},
  {code: 'PACK_ADAPTERS_MISMATCH', exit: 2, input: '--adapters 3 with a pack of 2', cli: benchPack([[`${LAYER0}.self_attn.q_proj`, 8, 8]], '--adapters', '3')},
  {code: 'PACK_MODULE_MISSING', exit: 2, input: '--targets q,k with a pack of q_proj only', cli: benchPack([[`${LAYER0}.self_attn.q_proj`, 8, 8]], '--targets', 'q,k')},
  {code: 'PACK_SHAPE_MISMATCH', exit: 2, input: 'a pack whose k_proj has 3 outputs, which do not divide q_proj\'s 8', cli: benchPack([[`${LAYER0}.self_attn.q_proj`, 8, 8], [`${LAYER0}.self_attn.k_proj`, 8, 3]])},
  {code: 'SHARED_B_MISMATCH', exit: 2, input: '--shared-b compressed from a pack of 2 adapters, --pack of 3', cli: async (_dir, fx: Fixtures) => ['bench', '--pack', await fx.pack(), '--shared-b', await fx.sharedB(2), ...TINY]},

  // files the bench writes for itself
  {
    code: 'WEIGHTS_TRUNCATED',
    exit: 2,
    input: 'a weight-set file cut short in the work folder',
    core: async (dir) => {
      const set = await prepareWeightSet({dims: {model: 'layer', hidden: 8, intermediate: 8, layers: 1, targets: ['q_proj']}, adapters: 1, ranks: [2], sharedK: 1, fuse: false, seed: 1, include: {stacks: true, shared: false}}, {workDir: dir})
      truncateSync(set.dataPath, 0)
      return set.read(Object.keys(set.info.tensors)[0]!, 0, 1)
    },
  },
  {
    code: 'ONNX_DUPLICATE_NAME',
    exit: 2,
    input: 'a graph declaring input "x" twice (a bug in a graph fragment; no user input reaches it)',
    core: () => {
      const g = new GraphBuilder('g')
      g.input('x', 'float32', [1])
      g.input('x', 'float32', [1])
    },
  },
]
