/**
 * Error rows for merge, quantize, stored 4-bit layouts, plan, synth, demo,
 * and the command line itself.
 */
import {mkdirSync, writeFileSync} from 'node:fs'
import {join} from 'node:path'
import {planFromFiles} from '../../../src/core/plan/plan-from-files.js'
import {createEncoder} from '../../../src/core/quant/schemes.js'
import {quantizeNf4} from '../../../src/core/quant/nf4.js'
import {quantizeQ4_0} from '../../../src/core/quant/q4-0.js'
import {ErrorCase, Fixtures, RawTensor, lora, writeAdapter, writeSt} from './fixtures.js'

/** A model folder: model.safetensors with `tensors`, and config.json (raw text when a string). */
function model(dir: string, tensors: RawTensor[], config: string | object = {model_type: 'llama'}): string {
  mkdirSync(dir, {recursive: true})
  writeSt(join(dir, 'model.safetensors'), tensors, {format: 'pt'})
  writeFileSync(join(dir, 'config.json'), typeof config === 'string' ? config : JSON.stringify(config))
  return dir
}

const f32 = (values: number[]) => new Uint8Array(Float32Array.from(values).buffer)
/** One F32 weight [rows, cols], filled with `fill` (or zeros). */
const weight = (name: string, rows: number, cols: number, fill?: (i: number) => number): RawTensor => ({
  name,
  dtype: 'F32',
  shape: [rows, cols],
  ...(fill ? {data: f32(Array.from({length: rows * cols}, (_, i) => fill(i)))} : {}),
})
/** A valid stored int4 weight m [2, 4]: qweight, scales, zeros. */
const int4 = (m: string): RawTensor[] => [
  {name: `${m}.qweight`, dtype: 'U8', shape: [2, 2]},
  {name: `${m}.scales`, dtype: 'F16', shape: [2, 1]},
  {name: `${m}.zeros`, dtype: 'U8', shape: [2, 1]},
]
/** A weight the default selection quantizes (a linear layer inside a numbered block). */
const UP = 'model.layers.0.mlp.up_proj.weight'
const nf4State = (weightName: string, text: string, suffix = 'bitsandbytes__nf4'): RawTensor => ({name: `${weightName}.quant_state.${suffix}`, dtype: 'U8', shape: [text.length], data: Buffer.from(text)})

/** `lora quantize` of a model made of `tensors`. */
const quantize = (tensors: RawTensor[], scheme = 'nf4', config?: string) => (dir: string) => ['quantize', model(join(dir, 'm'), tensors, config), '--scheme', scheme, '--out', join(dir, scheme === 'q4_0' ? 'q.gguf' : 'q')]

/** `lora merge` of the shared base with one adapter module of the given dims. */
const mergeWith = (module: string, inF: number, outF: number, ...extra: string[]) => async (dir: string, fx: Fixtures) => [
  'merge',
  '--base',
  await fx.base(),
  '--adapter',
  writeAdapter(join(dir, 'ad'), lora(module, 2, inF, outF)),
  '--out',
  join(dir, 'out'),
  ...extra,
]

export const MODEL_CASES: ErrorCase[] = [
  // merge
  {code: 'MERGE_NO_BASE_TENSOR', exit: 2, input: 'an adapter module the base does not have', cli: mergeWith('model.layers.0.self_attn.x_proj', 16, 16)},
  {code: 'MERGE_SHAPE_MISMATCH', exit: 2, input: 'q_proj [16, 17] against the base [16, 16]', cli: mergeWith('model.layers.0.self_attn.q_proj', 17, 16)},
  {code: 'MAX_LOSS_EXCEEDED', exit: 1, input: 'merge --quantize nf4 --max-loss 0.01', cli: async (dir, fx) => ['merge', '--base', await fx.base(), '--adapter', await fx.adapter(), '--out', join(dir, 'out'), '--quantize', 'nf4', '--probe', '16', '--max-loss', '0.01']},
  {code: 'BASE_NOT_QUANTIZED', exit: 2, input: 'merge --from-quantized of a float base', cli: async (dir, fx) => ['merge', '--base', await fx.base(), '--adapter', await fx.adapter(), '--out', join(dir, 'out'), '--from-quantized']},
  {code: 'BASE_IS_QUANTIZED', exit: 2, input: 'merge into an int4 base without --from-quantized', cli: (dir) => ['merge', '--base', model(join(dir, 'm'), int4('m')), '--adapter', writeAdapter(join(dir, 'ad'), lora('m', 2, 4, 2)), '--out', join(dir, 'out')]},
  {code: 'PROBE_MISSING', exit: 2, input: '--probe-file without a tensor for the module', cli: async (dir, fx) => [...(await mergeWith('model.layers.0.self_attn.q_proj', 16, 16)(dir, fx)), '--probe-file', writeSt(join(dir, 'p.safetensors'), [weight('other', 4, 16)])]},
  {code: 'PROBE_SHAPE', exit: 2, input: 'a probe [4, 8] for a module of 16 inputs', cli: async (dir, fx) => [...(await mergeWith('model.layers.0.self_attn.q_proj', 16, 16)(dir, fx)), '--probe-file', writeSt(join(dir, 'p.safetensors'), [weight('model.layers.0.self_attn.q_proj', 4, 8)])]},

  // quantize
  {code: 'ALREADY_QUANTIZED', exit: 2, input: 'quantize a model holding an int4 weight', cli: quantize(int4('m'))},
  {code: 'CONFIG_INVALID', exit: 2, input: 'config.json "{"', cli: quantize([weight('w.weight', 2, 64)], 'nf4', '{')},
  {code: 'QUANT_BAD_BLOCK_SIZE', exit: 2, input: 'quantizeNf4 with block size 7 (the command refuses the flag first)', core: () => quantizeNf4(new Float32Array(64), 7)},
  {code: 'QUANT_PRECONDITION', exit: 2, input: 'a q4_0 encoder for rows of 48 (the command keeps such tensors in float)', core: () => createEncoder({scheme: 'q4_0', blockSize: 32, doubleQuant: false}, [2, 48])},

  // stored 4-bit layouts, read by `lora quantize` (which refuses an already quantized model)
  {code: 'QUANT_UNSUPPORTED', exit: 2, input: 'a bitsandbytes fp4 quant state', cli: quantize([nf4State('w.weight', '{}', 'bitsandbytes__fp4')])},
  {code: 'QUANT_BAD_STATE', exit: 2, input: 'an nf4 quant state that is not JSON', cli: quantize([nf4State('w.weight', 'nope')])},
  {code: 'QUANT_MISSING_PART', exit: 2, input: 'an int4 qweight without scales and zeros', cli: quantize([int4('m')[0]!])},
  {code: 'QUANT_BAD_PART', exit: 2, input: 'int4 scales stored as F32', cli: quantize([int4('m')[0]!, {...int4('m')[1]!, dtype: 'F32'}, int4('m')[2]!])},

  // plan
  {code: 'PLAN_BAD_CONFIG', exit: 2, input: 'plan --config with hidden_size 0', cli: (dir) => (writeFileSync(join(dir, 'config.json'), JSON.stringify({hidden_size: 0})), ['plan', '--config', join(dir, 'config.json'), '--adapters', '1', '--budget', '1GB'])},
  {code: 'PLAN_NO_WEIGHTS', exit: 2, input: 'plan --base of a model with only 1-D tensors', cli: (dir) => ['plan', '--base', model(join(dir, 'm'), [{name: 'norm.weight', dtype: 'F32', shape: [4]}]), '--adapters', '1', '--budget', '1GB']},
  {code: 'PLAN_NO_ATTENTION', exit: 2, input: 'plan --base of a model with MLP weights only', cli: (dir) => ['plan', '--base', model(join(dir, 'm'), [weight('model.layers.0.mlp.up_proj.weight', 8, 4)]), '--adapters', '1', '--budget', '1GB']},
  {code: 'PLAN_NO_MODEL', exit: 2, input: 'planFromFiles without base or config (the command requires one of the flags first)', core: () => planFromFiles({adapters: 1, budget: 1e9, rank: 2, dtype: 'F16'})},
  {code: 'BAD_SIZE', exit: 2, input: '--budget 12XB', cli: (dir) => (writeFileSync(join(dir, 'config.json'), '{}'), ['plan', '--config', join(dir, 'config.json'), '--adapters', '1', '--budget', '12XB'])},

  // synth, demo, the command line
  {code: 'BAD_FLAG', exit: 2, input: 'synth adapters --ranks 8,-1', cli: (dir) => ['synth', 'adapters', '--out', join(dir, 'ad'), '--ranks', '8,-1']},
  {code: 'USAGE', exit: 2, input: 'synth adapters without the required --out', cli: () => ['synth', 'adapters', '--count', '1']},
  {code: 'OUTPUT_NOT_DIR', exit: 2, input: 'demo --out FILE', cli: (dir) => (writeFileSync(join(dir, 'f'), 'x'), ['demo', '--size', 'small', '--out', join(dir, 'f')])},
]
