#!/usr/bin/env bash
# Everything that needs a GPU, in one call on a bare GPU machine (no internet; torch, nvcc, pytest,
# hypothesis, triton and compute-sanitizer installed): build for sm_90, the benchmark's GPU presets
# against SGLang's own kernels, the tests on CUDA tensors (SGLang parity included) and the error
# cases, and compute-sanitizer on every kernel path and on fuzz cases. About 5 minutes on an H100.
#
#   bash scripts/gpu_check.sh     # writes under $OUT, else bench/results/<date>-<card>/
#
# The SGLang wheel (and msgspec's, for its envelope layout) come from build/wheels/: fetch them
# with `pip download` on a machine with internet and carry that folder. At most 8 files land in
# the output folder: summary.txt (appended after every step, so a cut-off run still reports),
# bench.json, bench.png, timing.txt, sass.txt and logs.tar.gz.
set -uo pipefail
cd "$(dirname "$0")/.."

PYTHON=${PYTHON:-python3}
card=$(nvidia-smi --query-gpu=name --format=csv,noheader 2>/dev/null | head -n 1 | tr ' ' '-')
OUT=${OUT:-bench/results/$(date +%F)-${card:-gpu}}
mkdir -p "$OUT"
logs=$(mktemp -d)
summary=$OUT/summary.txt
: >"$summary"
pack_logs() { tar -C "$logs" -czf "$OUT/logs.tar.gz" . 2>/dev/null; }

# step NAME LOG SECONDS COMMAND...: run under a time limit, log, append the outcome to summary.
step() {
  local name=$1 log=$2 limit=$3
  shift 3
  local started=$SECONDS status=0
  echo "::: $name"
  timeout "$limit" "$@" >"$logs/$log" 2>&1 || status=$?
  local outcome="ok"
  [ "$status" -eq 0 ] || outcome="FAILED (exit $status, see $log)"
  [ "$status" -ne 124 ] || outcome="FAILED (timed out after $limit s, see $log)"
  echo "$name: $outcome, $((SECONDS - started)) s" | tee -a "$summary"
  tail -n 3 "$logs/$log"
  pack_logs  # after every step, so that a run cut off later still brings its logs back
  return "$status"
}

{
  date -u +"%F %T UTC"
  nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.sm,clocks.mem --format=csv,noheader
  "$PYTHON" -c "import torch; print('torch', torch.__version__, 'cuda', torch.version.cuda)"
  nvcc --version | tail -n 2
} 2>&1 | tee -a "$summary"

# Wheels the machine lacks (msgspec), installed aside; the SGLang wheel is read where it lies.
if ls build/wheels/msgspec-*.whl >/dev/null 2>&1; then
  "$PYTHON" -m pip install -q --no-index --no-deps --target /tmp/site build/wheels/msgspec-*.whl \
    && export PYTHONPATH=/tmp/site${PYTHONPATH:+:$PYTHONPATH}
fi

# Editable, so that the tests run from this directory import the library built here.
export MAX_JOBS=16 TORCH_CUDA_ARCH_LIST=9.0 MAMBA_STATE_EXT_CUDA=1
step build build.log 200 "$PYTHON" -m pip install --no-index --no-deps --no-build-isolation -e . \
  || exit 1
export MAMBA_STATE_EXT_BACKEND=compiled
step backend backend.log 60 "$PYTHON" -c "
import mamba_state_ext
print(mamba_state_ext.backend())
assert mamba_state_ext.backend().cuda == 'compiled', 'the CUDA kernel is not what serves CUDA'"

# Most telling first, in case the lease runs short: benchmark, tests, then the sanitizers.
step benchmark bench.txt 150 "$PYTHON" -m mamba_state_ext.bench --device cuda \
  --preset qwen3-next-tp4 sglang-qwen3-next-tp4 --n 1 8 64 --padded 8 \
  --json "$OUT/bench.json" --plot "$OUT/bench.png"
grep -E "^preset|^ +[0-9/]+ |target|note" "$logs/bench.txt" | tee -a "$summary"
# Each kind alone, the host's issue time, and the time of a call on an idle GPU.
step timing timing.txt 90 "$PYTHON" scripts/gpu_timing.py --reps 20
cp "$logs/timing.txt" "$OUT/timing.txt"

# The tests on CUDA tensors (their ids name cuda; CI runs the rest), then the operator's error
# cases apart: one of them crashed the interpreter on torch 2.11 (SIGSEGV), which must not hide
# the other results.
step tests tests.log 150 "$PYTHON" -m pytest tests -q --maxfail=10 -m "not build" -k cuda \
  -p no:cacheprovider
grep -E "passed|failed" "$logs/tests.log" | tail -n 1 | tee -a "$summary"
# On a crash, the native frames too (faulthandler would take the signal first: off here).
segv_preload=()
cc -shared -fPIC -o "$logs/segv_backtrace.so" scripts/segv_backtrace.c 2>/dev/null \
  && segv_preload=(env LD_PRELOAD="$logs/segv_backtrace.so")
step "tests: error cases" tests-errors.log 60 "${segv_preload[@]}" "$PYTHON" -m pytest \
  tests/test_errors.py -q -p no:cacheprovider -p no:faulthandler
grep -E "passed|failed|Fatal" "$logs/tests-errors.log" | tail -n 1 | tee -a "$summary"

# compute-sanitizer on this project's kernel only; one cudaMalloc per tensor, so that an access
# past a tensor is past an allocation. racecheck: the kernel shares its live-task list through
# shared memory between barriers. (A command, not a function: timeout runs commands.)
sanitizer=$(command -v compute-sanitizer || echo /usr/local/cuda/bin/compute-sanitizer)
sanitize=(env PYTORCH_NO_CUDA_MEMORY_CACHING=1 "$sanitizer" --kernel-name kns=update_kernel
          --error-exitcode 1)
if [ -x "$sanitizer" ] && "$sanitizer" --version >/dev/null 2>&1; then
  for tool in memcheck racecheck; do
    step "sanitizer $tool" "sanitizer-$tool.log" 60 "${sanitize[@]}" --tool "$tool" "$PYTHON" \
      scripts/sanitizer_cases.py
  done
  step "sanitizer memcheck, fuzz cases" sanitizer-fuzz.log 60 env MAMBA_STATE_EXT_FUZZ=sanitizer \
    "${sanitize[@]}" --tool memcheck "$PYTHON" -m pytest tests/test_fuzz.py -q \
    -p no:cacheprovider -k "test_cuda and op"
else
  echo "sanitizers: unavailable (no working compute-sanitizer on this machine)" | tee -a "$summary"
fi

# The kernel's resources and SASS as built here.
step sass sass.txt 40 "$PYTHON" scripts/check_sass.py --arch 9.0
cp "$logs/sass.txt" "$OUT/sass.txt"

echo "::: summary ($OUT)"
cat "$summary"
! grep -q FAILED "$summary"
