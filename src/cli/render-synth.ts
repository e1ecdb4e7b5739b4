/** Human views of `lora synth base` and `lora synth adapters` results. */
import type {SynthAdaptersResult} from '../core/synth/adapters.js'
import type {SynthBaseResult} from '../core/synth/base.js'
import {formatBytes} from '../core/units.js'

export function renderSynthBase(result: SynthBaseResult): string {
  return [
    `wrote ${result.tensors} tensors (${(result.parameters / 1e6).toFixed(1)} M parameters, ${result.dtype}, ${formatBytes(result.bytes)}) to ${result.out}`,
    `files: ${result.files.join(', ')}`,
  ].join('\n')
}

export function renderSynthAdapters(result: SynthAdaptersResult): string {
  return [
    `wrote ${result.count} adapters (${result.modules_per_adapter} modules each, ${result.dtype}, ${formatBytes(result.bytes)} of weights) to ${result.out}`,
    `base model: ${result.base_model}`,
  ].join('\n')
}
