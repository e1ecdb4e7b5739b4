#!/usr/bin/env bash
# The end-to-end target table (`npm run bench:e2e`: rows main, q4 and poisson
# at the issue's sizes) on a GPU machine, within a time budget (default 570 s,
# under 10 minutes), printed as it goes and summarized at the end.
#
#   scripts/gpu-bench.sh [--ep auto|cuda|webgpu|cpu] [--budget SECONDS] [--threads N] [-- extra bench:e2e flags]
#   scripts/gpu-bench.sh --ep cpu --budget 120 -- --quick      # the script's logic, small, on any machine
#
# Needs node_modules (npm ci) in the checkout; builds dist/ (incrementally).
# The provider is resolved first (auto: cuda, then webgpu, then cpu, the
# first whose probe model runs) and said; nvidia-smi,
# where present, gives the GPU and, during the run, each strategy's device
# memory. On onnxruntime-node 1.30, GroupQueryAttention's CUDA kernel takes
# float16 only: in these float32 graphs it runs on the CPU provider beside the
# CUDA products, and every call copies the KV cache between host and device
# (the decoder runtime keeps it in host memory); both are in the figures.
# cuBLAS would run float32 products in TF32 (10-bit mantissas) on Ampere and
# later GPUs, enough to flip greedy tokens between strategies at margins far
# above float32 noise: NVIDIA_TF32_OVERRIDE=0 keeps them float32, so the token
# check means what it means on the CPU.
#
# The CUDA provider's libraries are not in onnxruntime-node's npm package (its
# install script fetches them from NuGet, which `.npmrc` skips): on a machine
# without them, auto falls back to WebGPU (a Vulkan driver for the GPU) and
# then to the CPU, and the provider line says what was passed over and why.
set -euo pipefail
export NVIDIA_TF32_OVERRIDE=0
cd "$(dirname "$0")/.."

ep=auto
budget=570
threads=$(nproc 2>/dev/null || echo 2)
extra=()
while [ $# -gt 0 ]; do
  case "$1" in
    --ep) ep="$2"; shift 2 ;;
    --budget) budget="$2"; shift 2 ;;
    --threads) threads="$2"; shift 2 ;;
    --) shift; extra=("$@"); break ;;
    *) echo "gpu-bench: unknown argument $1 (see the comment at the top of $0)" >&2; exit 2 ;;
  esac
done
case "$ep" in auto|cuda|webgpu|cpu) ;; *) echo "gpu-bench: --ep must be auto, cuda, webgpu or cpu (got $ep)" >&2; exit 2 ;; esac
[[ "$budget" =~ ^[0-9]+$ ]] || { echo "gpu-bench: --budget must be whole seconds (got $budget)" >&2; exit 2; }

command -v node >/dev/null || { echo "gpu-bench: node is not installed" >&2; exit 2; }
[ -d node_modules/onnxruntime-node ] || { echo "gpu-bench: node_modules is missing: run npm ci --no-audit --no-fund first" >&2; exit 2; }
npx tsc -p tsconfig.json # incremental: quick when dist/ is current

started=$(date +%s)
if command -v nvidia-smi >/dev/null; then
  echo "gpu: $(nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader 2>/dev/null | head -1)"
fi
resolved=$(node --input-type=module -e '
  const {resolveProvider} = await import("./dist/src/core/onnx/session.js")
  try {
    const r = await resolveProvider(process.argv[1])
    console.log(`${r.ep}\t${r.detail}`)
  } catch (error) {
    console.error(`gpu-bench: ${error.message}`)
    process.exit(2)
  }' "$ep")
provider=${resolved%%$'\t'*}
echo "provider: ${resolved#*$'\t'}"
[ "$provider" = cpu ] && [ "$ep" != cpu ] && echo "gpu-bench: no GPU provider initializes here; running on the CPU provider" >&2

left=$(( budget - ($(date +%s) - started) ))
set +e
rows=(--only main,q4,poisson)
for a in "${extra[@]}"; do [ "$a" = --only ] && rows=(); done
timeout --signal=INT --kill-after=15 "$left" node dist/bench/e2e.js --ep "$provider" --threads "$threads" "${rows[@]}" "${extra[@]}"
status=$?
set -e
if [ "$status" -eq 124 ] || [ "$status" -eq 130 ]; then
  echo "gpu-bench: stopped at the time budget (${budget} s); the rows printed above are complete, the others did not run" >&2
fi
exit "$status"
