#!/usr/bin/env bash
# Everything that needs a GPU, in one call of the device tool, most telling first. Each step runs
# under a time limit cut to the deadline, appends its outcome to $OUT/summary.txt as it ends and
# packs the logs into $OUT/logs.tar.gz, so that a run cut off still reports what it did:
#
#   1. the release wheel (build/gpu-check/dist), installed beside this machine's torch:
#      backend() must say compiled, with the CUDA kernel serving CUDA tensors (else nothing below
#      could run);
#   2. the error cases against the compiled operator in child processes, on the CPU and on CUDA
#      (a crash: its native frames, from cuda-gdb), and the process cases
#      (tests/test_processes.py: a first call inside graph capture in either capture mode, from a
#      fresh thread, on a side stream, with either module-loading mode, exit with work queued);
#   3. every other test on CUDA tensors (pytest -m cuda: the current stream, graph capture, no
#      host sync, parity with each SGLang release's kernels), then the plugin on CUDA tensors
#      through SGLang's own load_plugins();
#   4. the benchmark: both presets (dense, SGLang's layouts) at N = 1, 8, 64 and 64 entries with
#      8 live, copy_, SGLang's kernels and the empty launch in the same run, each call's host
#      issue time; then scripts/gpu_timing.py (each kind alone, a call on an idle GPU); then the
#      quantized presets (fp8 and int8 pools) against the torch reference and copy_;
#   5. with the time left: compute-sanitizer memcheck on the fuzz cases and on every kernel path
#      (scripts/sanitizer_cases.py), then the variant sweep (scripts/kernel_variants.txt).
#
# Prepared on a machine with internet and no GPU, by `bash scripts/prepare_gpu_check.sh`, which
# builds everything and prints the call, of this form:
#
#   run(command="COMMIT=<hash> bash scripts/gpu_check.sh", carry=["build/gpu-check"], timeout_s=540)
#
# <hash> being git rev-parse HEAD where build/gpu-check was prepared (the device tool's copy of the
# tree has no .git). The steps' seconds on a GPU are not measured yet (no GPU has run this script);
# the summary gives each step's, to be copied here after the first run.
#
# Without a GPU (CI's dry run, with the wheel of dist/ when build/gpu-check/ is absent) the steps
# that need one say "skipped: no GPU", and the rest run (the sanitizer's cases on the CPU
# kernel). $OUT (default bench/results/DATE-CARD) receives at most these 8 files: summary.txt,
# bench.json, bench.png, timing.txt, bench-quantized.json, sanitizer.txt, variants.txt,
# logs.tar.gz. The exit status is 0 when no step failed.
set -uo pipefail
caller=$PWD
cd "$(dirname "$0")/.."
REPO=$PWD
CARRY=$REPO/build/gpu-check

PYTHON=${PYTHON:-python3}
DEADLINE=${DEADLINE:-520}  # the device tool's timeout_s of 540, less the packing
card=$(nvidia-smi --query-gpu=name --format=csv,noheader 2>/dev/null | head -n 1 | tr ' ' '-')
OUT=$(cd "$caller" && realpath -m "${OUT:-$REPO/bench/results/$(date +%F)-${card:-gpu}}")
mkdir -p "$OUT"
logs=$(mktemp -d)
summary=$OUT/summary.txt
: >"$summary"
pack_logs() { tar -C "$logs" -czf "$OUT/logs.tar.gz" . 2>/dev/null; }
COMMIT=${COMMIT:-$(git -C "$REPO" rev-parse HEAD 2>/dev/null || echo unknown)}
export PYTHONUNBUFFERED=1 MAMBA_STATE_EXT_COMMIT=$COMMIT
gpu=0
"$PYTHON" -c "import sys, torch; sys.exit(not torch.cuda.is_available())" 2>/dev/null && gpu=1

# SECONDS, cut to what is left before the deadline (at least 1): every command's time limit.
cap() {
  local left=$((DEADLINE - SECONDS))
  [ "$left" -ge 1 ] || left=1
  echo $(($1 < left ? $1 : left))
}

# step NAME LOG SECONDS COMMAND...: run under a time limit (cut to the deadline), log, append the
# outcome to the summary. gpu_step: the same, or "skipped: no GPU".
step() {
  local name=$1 log=$2 limit=$3
  shift 3
  if [ $((DEADLINE - SECONDS)) -lt 15 ]; then
    echo "$name: NOT RUN (out of time, DEADLINE=$DEADLINE s)" | tee -a "$summary"
    return 124
  fi
  limit=$(cap "$limit")
  local started=$SECONDS status=0
  echo "::: $name"
  timeout "$limit" "$@" </dev/null >"$logs/$log" 2>&1 || status=$?
  local outcome="ok"
  [ "$status" -eq 0 ] || outcome="FAILED (exit $status, see $log)"
  [ "$status" -ne 124 ] || outcome="FAILED (timed out after $limit s, see $log)"
  echo "$name: $outcome, $((SECONDS - started)) s" | tee -a "$summary"
  tail -n 3 "$logs/$log"
  pack_logs
  return "$status"
}
gpu_step() {
  if [ "$gpu" -eq 0 ]; then
    echo "$1: skipped: no GPU" | tee -a "$summary"
    return 0
  fi
  step "$@"
}
# The last line of pytest's report in a log, into the summary.
tally() { grep -E "passed|failed|error" "$logs/$1" 2>/dev/null | tail -n 1 | tee -a "$summary"; }

{
  date -u +"%F %T UTC"
  echo "commit $MAMBA_STATE_EXT_COMMIT"
  nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.max.sm,clocks.max.mem \
    --format=csv,noheader 2>/dev/null || echo "no GPU (nvidia-smi: none)"
  "$PYTHON" -W ignore -c "import sys, torch; print('python', sys.version.split()[0], 'torch', torch.__version__, 'cuda', torch.version.cuda)"
} 2>&1 | tee -a "$summary"

# What the call carries: SGLang for the plugin (unpacked aside, on every step's path); each
# release's kernel files stay in build/gpu-check/sglang, where the tests and the benchmark look.
if [ -f "$CARRY/site.tar.gz" ]; then
  mkdir -p /tmp/gpu-check && tar -C /tmp/gpu-check -xzf "$CARRY/site.tar.gz" \
    && export PYTHONPATH=/tmp/gpu-check/site${PYTHONPATH:+:$PYTHONPATH}
else
  echo "build/gpu-check/site.tar.gz: not carried (scripts/prepare_gpu_check.sh)" | tee -a "$summary"
fi
sglang=$(ls -d "$CARRY"/sglang/sglang-* 2>/dev/null | tail -n 1)
wheel=$(ls "$CARRY"/dist/mamba_state_ext-*.whl "$REPO"/dist/mamba_state_ext-*.whl 2>/dev/null | head -n 1)
[ -n "$wheel" ] || { echo "no wheel in build/gpu-check/dist or dist" | tee -a "$summary"; exit 1; }

# 1. The wheel, under this machine's torch; the tests run from outside the source tree, so that
# they import it.
step "install ${wheel#"$REPO"/}" install.log 60 "$PYTHON" -m pip install --no-index --no-deps \
  --force-reinstall "$wheel" || exit 1
export MAMBA_STATE_EXT_BACKEND=compiled
cd /tmp
step backend backend.log 60 "$PYTHON" -W ignore -c "
import mamba_state_ext
print(mamba_state_ext.backend())
assert 'site-packages' in mamba_state_ext.__file__, mamba_state_ext.__file__
assert mamba_state_ext.backend().cuda == 'compiled', 'the CUDA kernel is not what serves CUDA'" \
  || exit 1  # else every CUDA test would skip, and nothing here be measured
cat "$logs/backend.log" >>"$summary"

# 2. The error cases in child processes, then the process cases.
gpu_step "error cases in child processes" errors.log 150 "$PYTHON" -m pytest \
  "$REPO/tests/test_errors.py" -q -rs -p no:cacheprovider -k child && tally errors.log
if [ "$gpu" -eq 1 ] && grep -q "the process died" "$logs/errors.log"; then
  # Each case that killed its process: its native frames (cuda-gdb debugs host code too).
  for device in cpu cuda; do
    (cd "$REPO/tests" && timeout "$(cap 60)" "$PYTHON" -X faulthandler error_child.py "$device" 0 \
      >"$logs/child-$device.jsonl" 2>&1) && continue
    crashed=$(cd "$REPO/tests" && "$PYTHON" -c "
import json, sys
from error_cases import CASES, OP
cases = [(c.op, c.id) for c in CASES if OP in c.surfaces]
lines = [json.loads(l) for l in open(sys.argv[1]) if l.startswith('{')]
print(cases.index((lines[-1]['op'], lines[-1]['case'])))" "$logs/child-$device.jsonl")
    echo "error case $crashed on $device killed its process: backtrace in crash-$device.log" \
      | tee -a "$summary"
    (cd "$REPO/tests" && timeout "$(cap 120)" cuda-gdb -batch -ex run -ex bt \
      -ex "info sharedlibrary" --args "$PYTHON" error_child.py "$device" "$crashed" \
      >"$logs/crash-$device.log" 2>&1)
    pack_logs
  done
fi
gpu_step "process cases" processes.log 150 "$PYTHON" -m pytest "$REPO/tests/test_processes.py" \
  -q -rs -p no:cacheprovider -m cuda && tally processes.log

# 3. Every other test on CUDA tensors, then the plugin through SGLang's loader.
gpu_step "tests on CUDA tensors" tests.log 200 "$PYTHON" -m pytest "$REPO/tests" -q -rs \
  --maxfail=10 -m "cuda and not build" -k "not child" --ignore="$REPO/tests/test_processes.py" \
  -p no:cacheprovider && tally tests.log
if [ "$gpu" -eq 0 ]; then
  echo "SGLang plugin on CUDA tensors: skipped: no GPU" | tee -a "$summary"
elif timeout "$(cap 90)" "$PYTHON" -c \
  "import sglang.srt.plugins, sglang.srt.layers.attention.hybrid_linear_attn_backend" \
  >"$logs/plugin-import.log" 2>&1; then
  step "SGLang plugin on CUDA tensors" plugin.log 120 env -C "$REPO/tests" TRITON_INTERPRET=0 \
    SGLANG_PARITY=1 SGLANG_DEVICE=cuda "$PYTHON" sglang_plugin_child.py
  tail -n 1 "$logs/plugin.log" | tee -a "$summary"
else
  echo "SGLang plugin on CUDA tensors: NOT RUN (SGLang does not import here; see" \
    "plugin-import.log)" | tee -a "$summary"
fi

# 4. The benchmark, and where a commit's time goes.
gpu_step benchmark bench.txt 200 "$PYTHON" -m mamba_state_ext.bench --device cuda \
  --preset qwen3-next-tp4 sglang-qwen3-next-tp4 --n 1 8 64 --padded 8 \
  ${sglang:+--sglang "$sglang"} --json "$OUT/bench.json" --plot "$OUT/bench.png"
grep -E "^preset|^ +[0-9/]+ |target|note|host cost" "$logs/bench.txt" 2>/dev/null \
  | tee -a "$summary"
gpu_step timing timing.txt 90 "$PYTHON" "$REPO/scripts/gpu_timing.py" --n 8 64 --reps 10 \
  ${sglang:+--sglang "$sglang"}
[ -f "$logs/timing.txt" ] && cp "$logs/timing.txt" "$OUT/timing.txt"
gpu_step "benchmark, quantized pools" bench-quantized.txt 120 "$PYTHON" -m mamba_state_ext.bench \
  --device cuda --preset qwen3-next-tp4-fp8 qwen3-next-tp4-int8 --n 1 8 64 \
  --methods vectorized mamba_state copy --json "$OUT/bench-quantized.json" \
  --plot "$logs/bench-quantized.png"
grep -E "^preset|^ +[0-9/]+ |target|note" "$logs/bench-quantized.txt" 2>/dev/null \
  | tee -a "$summary"

# 5. With the time left: compute-sanitizer on this project's kernel only (one cudaMalloc per
# tensor, so that an access past a tensor is past an allocation), then the variant sweep.
sanitizer=$(command -v compute-sanitizer || echo /usr/local/cuda/bin/compute-sanitizer)
sanitize=(env PYTORCH_NO_CUDA_MEMORY_CACHING=1 "$sanitizer" --kernel-name kns=copy_kernel
  --error-exitcode 1 --tool memcheck)
gpu_step "memcheck, fuzz cases" sanitizer-fuzz.log 120 env MAMBA_STATE_EXT_FUZZ=sanitizer \
  "${sanitize[@]}" "$PYTHON" -m pytest "$REPO/tests/test_fuzz.py" -q -p no:cacheprovider \
  -k "test_cuda and op"
gpu_step "memcheck, kernel paths" sanitizer-cases.log 90 "${sanitize[@]}" "$PYTHON" \
  "$REPO/scripts/sanitizer_cases.py"
if [ "$gpu" -eq 0 ]; then  # the same cases on the CPU kernel, so that the script cannot rot
  step "kernel paths on the CPU" sanitizer-cases-cpu.log 60 "$PYTHON" \
    "$REPO/scripts/sanitizer_cases.py" --device cpu
fi
if ls "$logs"/sanitizer-*.log >/dev/null 2>&1; then cat "$logs"/sanitizer-*.log >"$OUT/sanitizer.txt"; fi

while read -r name presets defines; do
  [[ -z $name || $name == \#* ]] && continue
  library=$CARRY/variants/$name/libmamba_state_ops.so
  if [ "$gpu" -eq 0 ]; then
    gpu_step "variant $name"
    continue
  elif [ ! -f "$library" ]; then
    echo "variant $name: not carried (scripts/prepare_gpu_check.sh)" | tee -a "$summary"
    continue
  fi
  step "variant $name" "variant-$name.txt" 60 env MAMBA_STATE_EXT_LIBRARY="$library" \
    "$PYTHON" -m mamba_state_ext.bench --device cuda --preset ${presets//,/ } --n 8 64 \
    --methods mamba_state copy --reps 20 || continue
  {
    echo "== $name ($defines)"
    grep -E "^preset|^ +[0-9]+ +(mamba_state|copy)|share of copy" "$logs/variant-$name.txt"
    cat "$CARRY/variants/$name/sass.txt" 2>/dev/null
  } | tee -a "$OUT/variants.txt" >>"$summary"
done <"$REPO/scripts/kernel_variants.txt"

pack_logs
echo "::: summary ($summary)"
cat "$summary"
! grep -qE "FAILED|NOT RUN" "$summary"
