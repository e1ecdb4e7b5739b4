/**
 * The public API of `lora-toolkit`: what a CI script needs to do what each
 * command does, by name (`import {packAdapters, mergeModel} from 'lora-toolkit'`).
 * One call per command with its options and report types, the gates, the file
 * readers, and the error classes with their exit codes. docs/api.md documents
 * it with an example that a test runs. Internals are not exported.
 */

// Errors and exit codes: InputError/UsageError → 2, GateError → 1, anything else → 3.
export {EXIT_BAD_INPUT, EXIT_GATE_FAILED, EXIT_INTERNAL, GateError, InputError, LoraError, UsageError} from './core/errors.js'
export type {LoraErrorOptions} from './core/errors.js'
export type {Progress, ProgressCallback} from './core/progress.js'
export {TOOL_NAME, toolVersion} from './core/version.js'

// What a file is, and reading one.
export {detect} from './core/formats/detect.js'
export type {FileKind} from './core/formats/detect.js'
export {inspectPath} from './core/inspect.js'
export type {AdapterSummary, InspectKind, InspectReport, TensorSummary} from './core/inspect.js'
export {SafetensorsFile} from './core/formats/safetensors-file.js'
export {ShardedModel, openModel} from './core/formats/sharded-model.js'
export {GgufFile} from './core/formats/gguf-reader.js'
export {LoraAdapter} from './core/formats/peft-adapter.js'
export {PackFile} from './core/formats/pack-file.js'
export {SharedBFile} from './core/formats/shared-b-file.js'
export type {DType} from './core/dtype.js'

// lora synth adapters / synth base
export {synthesizeAdapters} from './core/synth/adapters.js'
export type {SynthAdaptersOptions, SynthAdaptersResult} from './core/synth/adapters.js'
export {synthesizeBase} from './core/synth/base.js'
export type {SynthBaseOptions, SynthBaseResult} from './core/synth/base.js'

// lora pack / unpack
export {packAdapters} from './core/pack/pack-adapters.js'
export type {PackAdaptersOptions, PackResult} from './core/pack/pack-adapters.js'
export {unpackAdapter} from './core/unpack.js'
export type {UnpackOptions, UnpackResult} from './core/pack/unpack.js'

// lora compress
export {compressFile, sweepFile} from './core/compress/compress-file.js'
export type {CompressFileOptions, CompressReport, SweepReport} from './core/compress/compress-file.js'

// lora merge / quantize (and the merge quality gate)
export {evaluateGate, gateError, mergeModel} from './core/merge/merge-model.js'
export type {MergeGate, MergeOptions, MergeResult} from './core/merge/merge-model.js'
export {quantizeModel} from './core/model-io/quantize-model.js'
export type {QuantizeModelOptions, QuantizeModelResult} from './core/model-io/quantize-model.js'
export {QUANT_SCHEME_NAMES} from './core/quant/schemes.js'
export type {QuantSchemeName} from './core/quant/schemes.js'

// lora export
export {exportAdapters} from './core/export/export-adapters.js'
export type {ExportOptions, ExportResult} from './core/export/export-adapters.js'

// lora plan
export {planFromFiles} from './core/plan/plan-from-files.js'
export type {PlanFromFilesOptions, PlanReport} from './core/plan/plan-from-files.js'

// lora bench (defaults in core) and its regression gate
export {BENCH_DEFAULTS, benchServing} from './core/bench/bench-serving.js'
export type {BenchRequest} from './core/bench/bench-serving.js'
export {assertTolerance, runBench} from './core/bench/run-bench.js'
export type {BenchOptions, BenchOutcome} from './core/bench/run-bench.js'
export {assertComparable, compareWithBaseline, describeRegressions, readReport} from './core/bench/report.js'
export type {BenchReport, BenchResult, RegressionFailure} from './core/bench/report.js'

// lora bench --e2e
export {runE2e} from './core/e2e/run-e2e.js'
export type {E2eOptions} from './core/e2e/run-e2e.js'
export type {E2eReport, E2eResult} from './core/e2e/e2e-report.js'

// lora eval (and its KL gate)
export {evaluateVariants} from './core/eval/run-eval.js'
export type {EvalOptions, EvalResult, VariantResult} from './core/eval/run-eval.js'
export {DEFAULT_VARIANTS, parseVariant} from './core/eval/variants/registry.js'
export type {VariantRequest} from './core/eval/variants/registry.js'
export {kldGate, kldGateError} from './core/eval/kld-gate.js'
export type {KldGate} from './core/eval/kld-gate.js'

// lora generate, and the decoder runtime behind eval and bench --e2e
export {generateText} from './core/runtime/generate-text.js'
export type {GenerateTextOptions, GenerateTextResult} from './core/runtime/generate-text.js'
export {loadDecoder} from './core/runtime/load-decoder.js'
export type {AdapterRef, LoadDecoderOptions, LoadedDecoder} from './core/runtime/load-decoder.js'
export {loadTokenizer} from './core/runtime/tokenizer.js'
export type {TextTokenizer} from './core/runtime/tokenizer.js'

// lora demo
export {runDemo} from './core/demo/run-demo.js'
export type {DemoOptions, DemoReport} from './core/demo/run-demo.js'
