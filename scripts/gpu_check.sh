#!/usr/bin/env bash
# Everything that needs a GPU, on a bare GPU machine (no internet; torch, nvcc, pytest, hypothesis,
# triton, cmake, ninja, cuda-gdb and compute-sanitizer installed), in parts, most telling first,
# each step under its own time limit so that a cut-off run still reports:
#
#   1. the wheel built elsewhere (dist/), installed beside this machine's torch; the CUDA tests
#      that no CPU can run (current stream, graph capture, no host sync), then the error cases in
#      child processes (a crash: its native frames, from cuda-gdb);
#   2. the benchmark's GPU presets against SGLang's own kernels (N = 1, 8, 64 and a padded
#      batch), and the host's issue time (scripts/gpu_timing.py), with nothing else running;
#   3. every test on CUDA tensors, SGLang parity included (and the plugin through SGLang's own
#      loader where .whl/ carries SGLang and what its import needs), while the variants of part 4
#      build in the background;
#   4. the variant sweep: the kernel's compile-time switches (csrc/grid/grid.h), each timed
#      against a copy_ of the same bytes in its own run;
#   5. compute-sanitizer (memcheck, racecheck) on every kernel path and on fuzz cases; the SASS.
#
#   COMMIT=<hash> bash scripts/gpu_check.sh 1 2     # one call of the device tool
#   COMMIT=<hash> bash scripts/gpu_check.sh 3 4 5   # the next
#
# with <hash> what git rev-parse HEAD prints where the wheel was built, written into the command:
# the device tool's copy of the tree carries no .git (without COMMIT, git is asked; where it
# cannot say, the results record "unknown").
#
# No part needs another's output (each call installs the wheel), so that the parts split into
# calls of the device tool's 600 s as time allows. Each writes under $OUT (default
# bench/results/DATE-CARD). How long each part takes has not been measured yet: the summary
# gives each step's seconds.
#
# Carry dist/ (the wheel: pip wheel --no-build-isolation --no-deps -w dist . with
# TORCH_CUDA_ARCH_LIST=9.0), build/wheels/ (SGLang's wheel, whose kernels the parity tests and the
# benchmark read) and .whl/ (msgspec, for SGLang's envelope layout; SGLang for this Python and
# its import's pure-Python packages, for the plugin). .whl/ must not hold torch, triton or
# anything the machine has: they install with --no-deps ahead of the machine's own. At most
# seven files land in $OUT: summary-PARTS.txt (appended after every step), bench.json, bench.png,
# timing.txt, variants.txt, sass.txt, logs-PARTS.tar.gz.
#
# Every step ends by DEADLINE seconds after the start (default 570: the device tool's 600 s for
# one call, less the packing), its limit cut to fit; a step with no time left says "not run".
set -uo pipefail
caller=$PWD
cd "$(dirname "$0")/.."
REPO=$PWD

PYTHON=${PYTHON:-python3}
DEADLINE=${DEADLINE:-570}
parts=" ${*:-1 2 3 4 5} "
want() { [[ $parts == *" $1 "* ]]; }
tag=$(echo $parts | tr ' ' '-')
card=$(nvidia-smi --query-gpu=name --format=csv,noheader 2>/dev/null | head -n 1 | tr ' ' '-')
OUT=$(cd "$caller" && realpath -m "${OUT:-$REPO/bench/results/$(date +%F)-${card:-gpu}}")
mkdir -p "$OUT"
logs=$(mktemp -d)
summary=$OUT/summary-$tag.txt
: >"$summary"
pack_logs() { tar -C "$logs" -czf "$OUT/logs-$tag.tar.gz" . 2>/dev/null; }
COMMIT=${COMMIT:-$(git -C "$REPO" rev-parse HEAD 2>/dev/null || echo unknown)}
export PYTHONUNBUFFERED=1 MAMBA_STATE_EXT_COMMIT=$COMMIT

# SECONDS, cut to what is left before the deadline (at least 1): every command's time limit.
cap() {
  local left=$((DEADLINE - SECONDS))
  [ "$left" -ge 1 ] || left=1
  echo $(($1 < left ? $1 : left))
}

# step NAME LOG SECONDS COMMAND...: run under a time limit (cut to the deadline), log, append the
# outcome to the summary.
step() {
  local name=$1 log=$2 limit=$3
  shift 3
  local left=$((DEADLINE - SECONDS))
  if [ "$left" -lt 15 ]; then
    echo "$name: NOT RUN (out of time, DEADLINE=$DEADLINE s)" | tee -a "$summary"
    return 124
  fi
  limit=$(cap "$limit")
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
  echo "commit $MAMBA_STATE_EXT_COMMIT, parts$parts"
  nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.sm,clocks.mem --format=csv,noheader
  "$PYTHON" -c "import torch; print('torch', torch.__version__, 'cuda', torch.version.cuda)"
  nvcc --version | tail -n 2
} 2>&1 | tee -a "$summary"

# Wheels the machine lacks, installed aside; the SGLang wheel in build/wheels/ is read where it is.
if ls .whl/*.whl >/dev/null 2>&1; then
  timeout "$(cap 120)" "$PYTHON" -m pip install -q --no-index --no-deps --no-compile \
    --target /tmp/site .whl/*.whl \
    && export PYTHONPATH=/tmp/site${PYTHONPATH:+:$PYTHONPATH}
fi

# 1. The wheel, under this machine's torch; the tests run from outside the source tree, so that
# they import it.
step "install the wheel" install.log 60 "$PYTHON" -m pip install --no-index --no-deps \
  --force-reinstall dist/mamba_state_ext-*.whl || exit 1
export MAMBA_STATE_EXT_BACKEND=compiled
cd /tmp
step backend backend.log 60 "$PYTHON" -c "
import mamba_state_ext
print(mamba_state_ext.backend())
assert 'site-packages' in mamba_state_ext.__file__, mamba_state_ext.__file__
assert mamba_state_ext.backend().cuda == 'compiled', 'the CUDA kernel is not what serves CUDA'" \
  || exit 1  # else every CUDA test would skip, and nothing here be measured
if want 1; then
step "tests: stream, graph capture, no host sync" tests-launch.log 120 "$PYTHON" -m pytest \
  "$REPO/tests/test_torch_integration.py" -q -rs -p no:cacheprovider -m cuda
step "tests: error cases in child processes" tests-errors.log 120 "$PYTHON" -m pytest \
  "$REPO/tests/test_errors.py" -q -p no:cacheprovider -k child
grep -E "passed|failed" "$logs/tests-errors.log" | tail -n 1 | tee -a "$summary"
# A case that killed its process: its native frames. (cuda-gdb debugs host code too.)
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
  (cd "$REPO/tests" && timeout "$(cap 120)" cuda-gdb -batch -ex run -ex bt -ex "info sharedlibrary" \
    --args "$PYTHON" error_child.py "$device" "$crashed" >"$logs/crash-$device.log" 2>&1)
  pack_logs
done
fi

# 2. The benchmark, and where a commit's host time goes.
sglang_wheel=$(ls "$REPO"/build/wheels/sglang-*.whl 2>/dev/null | head -n 1)
if want 2; then
step benchmark bench.txt 240 "$PYTHON" -m mamba_state_ext.bench --device cuda \
  --preset qwen3-next-tp4 sglang-qwen3-next-tp4 --n 1 8 64 --padded 8 \
  ${sglang_wheel:+--sglang-wheel "$sglang_wheel"} --json "$OUT/bench.json" --plot "$OUT/bench.png"
grep -E "^preset|^ +[0-9/]+ |target|note|host cost" "$logs/bench.txt" | tee -a "$summary"
step timing timing.txt 120 "$PYTHON" "$REPO/scripts/gpu_timing.py" --n 8 64 --reps 10 \
  ${sglang_wheel:+--sglang-wheel "$sglang_wheel"}
cp "$logs/timing.txt" "$OUT/timing.txt"
fi

# The variants of part 4 (name, presets timed, switches) build in the background during part 3,
# after the timings of part 2, which a busy host would disturb.
variants=(
  "bulk qwen3-next-tp4,sglang-qwen3-next-tp4 MAMBA_STATE_BULK_COPY=1"
  "units8 qwen3-next-tp4,sglang-qwen3-next-tp4 MAMBA_STATE_UNITS_PER_THREAD=8 MAMBA_STATE_MIN_BLOCKS_PER_SM=1"
  "window1.6 sglang-qwen3-next-tp4 MAMBA_STATE_WINDOW_TILE_WEIGHT=1.6"
)
if want 4; then
  for variant in "${variants[@]}"; do
    read -r name _ defines <<<"$variant"
    (cd "$REPO" && MAX_JOBS=4 timeout 300 nice -n 19 "$PYTHON" scripts/build_variant.py \
      "$REPO/build/variants/$name" $defines >"$logs/variant-$name-build.log" 2>&1) &
  done
fi

# 3. Every test that needs a GPU (the marker cuda, tests/conftest.py; CI runs the rest) and the
# plugin on CUDA tensors through SGLang's own loader.
if want 3; then
step tests tests.log 240 "$PYTHON" -m pytest "$REPO/tests" -q -rs --maxfail=10 \
  -m "cuda and not build" -k "not child" -p no:cacheprovider
grep -E "passed|failed" "$logs/tests.log" | tail -n 1 | tee -a "$summary"
if timeout "$(cap 60)" "$PYTHON" -c \
    "import sglang.srt.plugins, sglang.srt.layers.attention.hybrid_linear_attn_backend" \
    >"$logs/plugin-import.log" 2>&1; then
  step "SGLang plugin on CUDA tensors" plugin.log 120 env -C "$REPO/tests" TRITON_INTERPRET=0 \
    SGLANG_PARITY=1 SGLANG_DEVICE=cuda "$PYTHON" sglang_plugin_child.py
  tail -n 1 "$logs/plugin.log" | tee -a "$summary"
else
  echo "SGLang plugin on CUDA tensors: not run (SGLang does not import here: carry it in .whl/;" \
    "see plugin-import.log)" | tee -a "$summary"
fi
fi

# 4. The variant sweep: each variant of the kernel's switches, timed beside copy_ in its own run;
# the kernel as it is was timed in part 2.
if want 4; then
# The builds (each under its own 300 s), waited for until the deadline, then stopped.
while [ -n "$(jobs -pr)" ] && [ "$SECONDS" -lt $((DEADLINE - 15)) ]; do sleep 2; done
kill $(jobs -pr) 2>/dev/null
: >"$OUT/variants.txt"
for variant in "${variants[@]}"; do
  read -r name presets defines <<<"$variant"
  library=$(tail -n 1 "$logs/variant-$name-build.log")
  if [ ! -f "$library" ]; then
    echo "variant $name: build FAILED (see variant-$name-build.log)" | tee -a "$summary"
    continue
  fi
  step "variant $name" "variant-$name.txt" 90 env MAMBA_STATE_EXT_LIBRARY="$library" \
    "$PYTHON" -m mamba_state_ext.bench --device cuda --preset ${presets//,/ } --n 8 64 \
    --methods mamba_state copy --reps 20
  {
    echo "== $name ($defines)"
    grep -E "^preset|^ +[0-9]+ +(mamba_state|copy)|share of copy" "$logs/variant-$name.txt"
    (cd "$REPO" && timeout "$(cap 120)" "$PYTHON" scripts/check_sass.py --arch 9.0 \
      --define $defines) 2>&1
  } | tee -a "$OUT/variants.txt" >>"$summary"
done
fi

# 5. compute-sanitizer on this project's kernel only; one cudaMalloc per tensor, so that an access
# past a tensor is past an allocation. racecheck: the kernel shares its live-task list through
# shared memory between barriers.
if want 5; then
sanitizer=$(command -v compute-sanitizer || echo /usr/local/cuda/bin/compute-sanitizer)
sanitize=(env PYTORCH_NO_CUDA_MEMORY_CACHING=1 "$sanitizer" --kernel-name kns=copy_kernel
          --error-exitcode 1)
# A sanitizer that cannot run a torch kernel at all on this machine says so, not FAILED.
if timeout "$(cap 120)" "$sanitizer" --tool memcheck --error-exitcode 1 "$PYTHON" -c \
    "import torch; torch.ones(1, device='cuda').add_(1); torch.cuda.synchronize()" \
    >"$logs/sanitizer-probe.log" 2>&1; then
  for tool in memcheck racecheck; do
    step "sanitizer $tool" "sanitizer-$tool.log" 90 "${sanitize[@]}" --tool "$tool" "$PYTHON" \
      "$REPO/scripts/sanitizer_cases.py"
  done
  step "sanitizer memcheck, fuzz cases" sanitizer-fuzz.log 120 env \
    MAMBA_STATE_EXT_FUZZ=sanitizer "${sanitize[@]}" --tool memcheck "$PYTHON" -m pytest \
    "$REPO/tests/test_fuzz.py" -q -p no:cacheprovider -k "test_cuda and op"
else
  echo "sanitizers: unavailable (compute-sanitizer cannot run a torch kernel here; see" \
    "sanitizer-probe.log)" | tee -a "$summary"
fi
step sass sass.txt 60 env -C "$REPO" "$PYTHON" scripts/check_sass.py --arch 9.0
cp "$logs/sass.txt" "$OUT/sass.txt"
fi

pack_logs
echo "::: summary ($summary)"
cat "$summary"
# A step FAILED or NOT RUN, or a variant's SASS check found a problem (FAIL).
! grep -qE "FAILED|NOT RUN|^FAIL " "$summary"
