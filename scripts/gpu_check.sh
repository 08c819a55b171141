#!/usr/bin/env bash
# Everything that needs a GPU, in one call on a bare GPU machine (no internet; torch, nvcc, pytest,
# hypothesis, triton and compute-sanitizer installed): build for sm_90, the test suite with its
# CUDA cases, the benchmark's GPU presets, and compute-sanitizer (memcheck, racecheck, initcheck)
# on every kernel path and on the fuzz profile's CUDA cases, bad indices included. Meant to fit in
# 8 minutes on an H100; each step's time is in the summary.
#
#   bash scripts/gpu_check.sh            # writes under $OUT, else bench/results/<date>-<card>/
#
# Logs and results: env.txt, build.log, backend.log, tests.log, bench.txt, bench.json, bench.png,
# sanitizer-*.log, summary.txt; the last lines printed summarize each step.
set -uo pipefail
cd "$(dirname "$0")/.."

PYTHON=${PYTHON:-python3}
card=$(nvidia-smi --query-gpu=name --format=csv,noheader 2>/dev/null | head -n 1 | tr ' ' '-')
OUT=${OUT:-bench/results/$(date +%F)-${card:-gpu}}
mkdir -p "$OUT"
summary=()
step() {  # step NAME LOG COMMAND...: run, log, and remember the outcome
  local name=$1 log=$2
  shift 2
  local started=$SECONDS status=0
  echo "::: $name"
  "$@" >"$OUT/$log" 2>&1 || status=$?
  local outcome="ok"
  [ "$status" -eq 0 ] || outcome="FAILED (exit $status, see $log)"
  summary+=("$name: $outcome, $((SECONDS - started)) s")
  tail -n 3 "$OUT/$log"
  return "$status"
}

{
  date -u +"%F %T UTC"
  nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader
  "$PYTHON" -c "import torch; print('torch', torch.__version__, 'cuda', torch.version.cuda)"
  nvcc --version | tail -n 2
} >"$OUT/env.txt" 2>&1
cat "$OUT/env.txt"

# Editable, so that the tests run from this directory import the library built here.
export MAX_JOBS=16 TORCH_CUDA_ARCH_LIST=9.0 MAMBA_STATE_EXT_CUDA=1
step build build.log "$PYTHON" -m pip install --no-build-isolation --no-deps -e . || {
  printf '%s\n' "${summary[@]}"
  exit 1
}
export MAMBA_STATE_EXT_BACKEND=compiled
step backend backend.log "$PYTHON" -c "
import mamba_state_ext
print(mamba_state_ext.backend())
assert mamba_state_ext.backend().cuda == 'compiled', 'the CUDA kernel is not what serves CUDA'"

# Most telling first, in case the lease runs short: tests, benchmark, then the sanitizers.
step tests tests.log "$PYTHON" -m pytest tests -q -m "not build" -p no:cacheprovider

step benchmark bench.txt "$PYTHON" -m mamba_state_ext.bench --device cuda \
  --preset qwen3-next-tp4 qwen3-next-tp1 --json "$OUT/bench.json" --plot "$OUT/bench.png"
grep -E "^preset|target" "$OUT/bench.txt"

# Only this project's kernel is checked; one cudaMalloc per tensor, so that an access past a
# tensor is past an allocation.
sanitizer=$(command -v compute-sanitizer || echo /usr/local/cuda/bin/compute-sanitizer)
sanitize() {
  PYTORCH_NO_CUDA_MEMORY_CACHING=1 "$sanitizer" --tool "$1" --kernel-name kns=update_kernel \
    --error-exitcode 1 "${@:2}"
}
for tool in memcheck racecheck initcheck; do
  step "sanitizer $tool" "sanitizer-$tool.log" sanitize "$tool" "$PYTHON" scripts/sanitizer_cases.py
done
export MAMBA_STATE_EXT_FUZZ=sanitizer  # a few dozen cases: the sanitizer is slow
step "sanitizer memcheck, fuzz cases" sanitizer-fuzz.log sanitize memcheck \
  "$PYTHON" -m pytest tests/test_fuzz.py -q -p no:cacheprovider -k "test_cuda and op"

echo "::: summary ($OUT)"
printf '%s\n' "${summary[@]}" | tee "$OUT/summary.txt"
! grep -q FAILED "$OUT/summary.txt"
