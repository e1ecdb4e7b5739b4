/**
 * Checkpoints whose linear layers are transformers' `Conv1D` (GPT-2 and its
 * family, `model_type` gpt2): their weights are stored [in, out], the
 * transpose of `nn.Linear`. Engines that hold weights [out, in] (llama.cpp's
 * GGUF, bitsandbytes' 4-bit layers) need them transposed before quantizing:
 * a quantized block runs along one stored dimension and cannot be transposed afterwards.
 */

/** Conv1D weight names per config.json `model_type` (with or without GPT-2's `transformer.` prefix). */
const CONV1D_WEIGHTS: Readonly<Record<string, RegExp>> = Object.freeze({
  gpt2: /(^|\.)h\.\d+\.(attn\.c_attn|attn\.c_proj|mlp\.c_fc|mlp\.c_proj)\.weight$/,
})

/** Whether `name` is a Conv1D weight ([in, out]) in a model of this `model_type`. */
export function isConv1DWeight(modelType: unknown, name: string): boolean {
  const pattern = typeof modelType === 'string' ? CONV1D_WEIGHTS[modelType] : undefined
  return pattern !== undefined && pattern.test(name)
}
