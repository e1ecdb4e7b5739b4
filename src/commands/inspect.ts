import {Args} from '@oclif/core'
import {LoraCommand} from '../cli/base-command.js'
import {formatNumber, renderTable} from '../cli/table.js'
import {InspectReport, inspectPath} from '../core/inspect.js'
import {formatBytes} from '../core/units.js'
import {PACK_FORMAT} from '../core/formats/pack-manifest.js'
import type {PackSummary} from '../core/pack/inspect-pack.js'
import {renderPackSummary} from '../cli/render-pack.js'
import {SHARED_B_FORMAT} from '../core/formats/shared-b-file.js'
import type {SharedBSummary} from '../core/compress/inspect-shared-b.js'
import {renderSharedBSummary} from '../cli/render-shared-b.js'
import type {GgufSummary} from '../core/gguf/inspect-gguf.js'

/** Tensors listed in the human view before "… N more". */
const MAX_TENSOR_ROWS = 40

export default class Inspect extends LoraCommand {
  static override summary = 'Describe adapters, safetensors files, packs, models and GGUF files (headers only).'
  static override description =
    'Reads only headers, so it is fast for files of any size. For an adapter folder: rank, alpha, scaling, targets and per-module shapes. For a packed file: the manifest, slots and padding. For a model: tensors, dtypes and bytes. For a GGUF model or LoRA adapter (llama.cpp): architecture, file type, tokenizer or adapter alpha, every metadata entry and every tensor with its GGML type. Other files are refused in one line.'
  static override examples = [
    {command: '<%= config.bin %> inspect ./adapters/adapter-0003', description: 'Show an adapter\'s rank, alpha and modules.'},
    {command: '<%= config.bin %> inspect model.safetensors --json', description: 'Machine-readable tensor list.'},
    {command: '<%= config.bin %> inspect merged-q4_0.gguf', description: 'A GGUF model: metadata, tokenizer and tensor types.'},
  ]
  static override strict = false
  static override args = {
    path: Args.string({description: 'adapter folder, .safetensors file, packed file, model folder/index, or GGUF model/adapter', required: true}),
  }

  async run(): Promise<InspectReport | InspectReport[]> {
    const {argv} = await this.parse(Inspect)
    const reports: InspectReport[] = []
    for (const path of argv as string[]) reports.push(await inspectPath(path))
    if (!this.jsonEnabled()) this.log(reports.map(renderReport).join('\n\n'))
    return reports.length === 1 ? reports[0]! : reports
  }
}

function renderReport(r: InspectReport): string {
  const lines = [`${r.path}  (${r.kind}, ${formatBytes(r.bytes)}, ${r.tensors.length} tensors)`]
  if (r.shards) lines.push(`shards: ${r.shards.join(', ')}`)
  if (r.adapter) {
    const a = r.adapter
    lines.push(
      `base model: ${a.base_model ?? '(none)'}`,
      `r = ${a.r}, lora_alpha = ${a.lora_alpha}${a.use_rslora ? ', rslora' : ''}, scaling = ${formatNumber(a.scaling)}, dtype ${a.dtype ?? 'mixed'}`,
      `targets: ${a.target_modules === null ? '(none)' : JSON.stringify(a.target_modules)}${a.fan_in_fan_out ? ', fan_in_fan_out' : ''}`,
      '',
      renderTable(
        ['module', 'kind', 'in', 'out', 'r', 'scaling'],
        a.modules.slice(0, MAX_TENSOR_ROWS).map((m) => [m.name, m.kind, m.in, m.out, m.r, formatNumber(m.scaling)]),
      ),
    )
    if (a.modules.length > MAX_TENSOR_ROWS) lines.push(`… ${a.modules.length - MAX_TENSOR_ROWS} more modules (--json lists all)`)
    if (a.modules_to_save.length > 0) lines.push('', `extra tensors (not LoRA pairs): ${a.modules_to_save.length}, e.g. ${a.modules_to_save[0]}`)
    for (const w of a.warnings) lines.push(`warning: ${w}`)
    return lines.join('\n')
  }
  if (r.gguf) lines.push(...renderGguf(r.gguf))
  if (r.pack && r.pack.format === PACK_FORMAT) return [lines[0], renderPackSummary(r.pack as PackSummary)].join('\n')
  if (r.pack && r.pack.format === SHARED_B_FORMAT) return [lines[0], renderSharedBSummary(r.pack as unknown as SharedBSummary)].join('\n')
  if (r.pack) lines.push(`pack: ${JSON.stringify(r.pack)}`)
  const meta = Object.entries(r.metadata).filter(([k]) => k !== 'manifest')
  if (meta.length > 0) lines.push(`metadata: ${meta.map(([k, v]) => `${k}=${v.length > 60 ? `${v.slice(0, 60)}…` : v}`).join(', ')}`)
  lines.push(
    '',
    renderTable(
      ['tensor', 'dtype', 'shape', 'bytes'],
      r.tensors.slice(0, MAX_TENSOR_ROWS).map((t) => [t.name, t.dtype, `[${t.shape.join(', ')}]`, t.bytes]),
    ),
  )
  if (r.tensors.length > MAX_TENSOR_ROWS) lines.push(`… ${r.tensors.length - MAX_TENSOR_ROWS} more tensors (--json lists all)`)
  return lines.join('\n')
}

/** GGUF metadata entries listed in the human view before "… N more". */
const MAX_KV_ROWS = 40

function renderGguf(g: GgufSummary): string[] {
  const types = Object.entries(g.tensor_types).map(([t, n]) => `${n} ${t}`).join(', ')
  const head =
    g.type === 'adapter'
      ? `GGUF v${g.version} LoRA adapter for ${g.architecture ?? '(no architecture)'}: ${g.adapter!.tensors_adapted} tensors adapted, adapter.lora.alpha ${g.adapter!.alpha ?? '(none)'}${g.adapter!.alpha === 0 ? ' (each module at scale 1)' : ''}; ${types}`
      : `GGUF v${g.version} model: ${g.architecture ?? '(no architecture)'}${g.name ? ` "${g.name}"` : ''}, file type ${g.file_type ?? '(none)'}; ${types}`
  const lines = [head]
  if (g.tokenizer) lines.push(`tokenizer: ${g.tokenizer.model}${g.tokenizer.pre ? ` (pre ${g.tokenizer.pre})` : ''}, ${g.tokenizer.tokens} tokens`)
  lines.push(
    '',
    renderTable(
      ['key', 'type', 'value'],
      g.kv.slice(0, MAX_KV_ROWS).map((e) => [e.key, e.type, Array.isArray(e.value) ? `${JSON.stringify(e.value).slice(0, 80)}${e.count! > e.value.length ? ` … (${e.count})` : ''}` : String(e.value).slice(0, 80)]),
    ),
  )
  if (g.kv.length > MAX_KV_ROWS) lines.push(`… ${g.kv.length - MAX_KV_ROWS} more entries (--json lists all)`)
  return lines
}
