/**
 * Writing PEFT adapter folders (`adapter_config.json` + `adapter_model.safetensors`).
 */
import {writeFile} from 'node:fs/promises'
import {join} from 'node:path'
import {AtomicDirectory, OutputOptions, withAtomic} from '../io/atomic-output.js'
import {ADAPTER_OUTPUT_KIND} from '../io/output-target.js'
import type {DType} from '../dtype.js'
import {ADAPTER_CONFIG_NAME, ADAPTER_WEIGHTS_NAME, PEFT_PREFIX} from './peft-adapter.js'
import {writeSafetensors} from './safetensors-writer.js'

export interface AdapterTensor {
  readonly name: string
  readonly dtype: DType
  readonly shape: readonly number[]
  readonly data: ArrayBufferView
}

/** PEFT's tensor names for a linear LoRA module: `[A key, B key]`. */
export function loraKeys(module: string): [string, string] {
  return [`${PEFT_PREFIX}${module}.lora_A.weight`, `${PEFT_PREFIX}${module}.lora_B.weight`]
}

/** PEFT's tensor names for an embedding LoRA module. */
export function loraEmbeddingKeys(module: string): [string, string] {
  return [`${PEFT_PREFIX}${module}.lora_embedding_A`, `${PEFT_PREFIX}${module}.lora_embedding_B`]
}

/** A complete LoRA `adapter_config.json` object as PEFT writes it, with `fields` overriding the defaults. */
export function peftLoraConfig(fields: Record<string, unknown>): Record<string, unknown> {
  return {
    alpha_pattern: {},
    auto_mapping: null,
    base_model_name_or_path: null,
    bias: 'none',
    fan_in_fan_out: false,
    inference_mode: true,
    init_lora_weights: true,
    layers_pattern: null,
    layers_to_transform: null,
    lora_alpha: 8,
    lora_dropout: 0,
    modules_to_save: null,
    peft_type: 'LORA',
    r: 8,
    rank_pattern: {},
    revision: null,
    target_modules: [],
    task_type: 'CAUSAL_LM',
    use_dora: false,
    use_rslora: false,
    ...fields,
  }
}

/** The `__metadata__` PEFT writes into adapter files. */
export const PEFT_SAFETENSORS_METADATA: Readonly<Record<string, string>> = Object.freeze({format: 'pt'})

/**
 * Write the two adapter files into an existing folder `dir` (`metadata`: the safetensors `__metadata__`, PEFT's by default;
 * `configText`: the config file's exact text, written instead of serializing `config`).
 */
export async function writeAdapterFiles(
  dir: string,
  config: Readonly<Record<string, unknown>>,
  tensors: readonly AdapterTensor[],
  metadata: Readonly<Record<string, string>> = PEFT_SAFETENSORS_METADATA,
  configText?: string,
): Promise<void> {
  await writeFile(join(dir, ADAPTER_CONFIG_NAME), configText ?? `${JSON.stringify(config, null, 2)}\n`)
  await writeSafetensors(join(dir, ADAPTER_WEIGHTS_NAME), tensors, {metadata})
}

/** Write an adapter folder atomically (temporary folder renamed on success). */
export async function writeAdapter(
  dir: string,
  config: Readonly<Record<string, unknown>>,
  tensors: readonly AdapterTensor[],
  options: OutputOptions & {metadata?: Readonly<Record<string, string>>; configText?: string} = {},
): Promise<void> {
  await withAtomic(await AtomicDirectory.create(dir, {force: options.force, kind: ADAPTER_OUTPUT_KIND}), (out) => writeAdapterFiles(out.path, config, tensors, options.metadata, options.configText))
}
