#!/usr/bin/env bash
# Prepares, on a machine with internet and no GPU, everything scripts/gpu_check.sh needs on the
# device machine (no internet), in build/gpu-check/, the one path the device tool carries:
#
#   dist/          the release wheel and sdist (scripts/build_release.sh), the kernel for sm_90
#   variants/NAME/ the sweep's variants (scripts/kernel_variants.txt), each built by
#                  scripts/build_variant.py: the CMake build, linked as the wheel is
#   sglang/        each SGLang release's kernel files, extracted from its wheel
#                  (tests/sglang_kernels.py): the parity tests' and the benchmark's reference
#   site.tar.gz    the newest SGLang release without its Rust extensions, its benchmark, tests
#                  and multimodal generator (none of which its plugin loader or attention
#                  backend imports), with the packages their import needs and msgspec, for the
#                  device machine's Python: the plugin through SGLang's own load_plugins()
#
# then checks that it fits the device tool's 64 MiB with the working tree, and prints the call.
#
#   bash scripts/prepare_gpu_check.sh
#
# The device machine (the device tool's page): Python 3.12, torch 2.11.0 (CUDA 13.0), which pairs
# with torchvision 0.26.0. Needs the release tools (scripts/release-requirements.txt), cmake,
# nvcc, and SGLang's wheels (scripts/install_sglang.sh downloads them).
set -euo pipefail
shopt -s nullglob
cd "$(dirname "$0")/.."
GPU_PYTHON=${GPU_PYTHON:-3.12}
GPU_TORCHVISION=${GPU_TORCHVISION:-0.26.0}
CARRY_LIMIT=$((64 << 20))
out=build/gpu-check
export TORCH_CUDA_ARCH_LIST=9.0  # H100 and H200
rm -rf "$out"
mkdir -p "$out/sglang" "$out/variants"

bash scripts/build_release.sh "$out/dist"

while read -r name _ defines; do
  [[ -z $name || $name == \#* ]] && continue
  # shellcheck disable=SC2086  # one argument per switch
  python scripts/build_variant.py "build/variants/$name" $defines >/dev/null
  mkdir -p "$out/variants/$name"
  cp "build/variants/$name/libmamba_state_ops.so" "$out/variants/$name/"
  python scripts/check_sass.py --arch 9.0 --define $defines >"$out/variants/$name/sass.txt" \
    || echo "variant $name: its SASS check failed ($out/variants/$name/sass.txt)"
done <scripts/kernel_variants.txt

releases=$(python -c "from mamba_state_ext.integrations.sglang import SGLANG_RELEASES as r; print(*r)")
for release in $releases; do
  wheels=(build/wheels/sglang-"$release"-*.whl)
  [ ${#wheels[@]} -gt 0 ] || { echo "no sglang $release wheel: bash scripts/install_sglang.sh" >&2; exit 1; }
  python tests/sglang_kernels.py "${wheels[0]}" "$out/sglang"
done

site=$(mktemp -d)
trap 'rm -rf "$site"' EXIT
newest=${releases##* }
sed "s/^torchvision==.*/torchvision==$GPU_TORCHVISION/" tests/sglang-imports.txt >"$site/requirements.txt"
pip install -q --no-deps --no-compile --only-binary=:all: --python-version "$GPU_PYTHON" \
  --implementation cp --platform manylinux_2_34_x86_64 --platform manylinux_2_28_x86_64 \
  --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 --target "$site/site" \
  "sglang==$newest" msgspec -r "$site/requirements.txt"
rm -rf "$site"/site/sglang/{multimodal_gen,test,benchmark} "$site"/site/bin
find "$site/site/sglang" -name '*.so' -delete
tar -C "$site" -czf "$out/site.tar.gz" site

carried=$(du -sb "$out" | cut -f1)
tree=$(git ls-files -z --cached --others --exclude-standard | du -cb --files0-from=- | tail -n 1 | cut -f1)
echo "build/gpu-check: $((carried >> 20)) MiB; with the working tree $(((carried + tree) >> 20)) MiB" \
  "of the device tool's $((CARRY_LIMIT >> 20))"
[ $((carried + tree)) -lt $CARRY_LIMIT ] || { echo "too large to carry" >&2; exit 1; }
echo "the call (commit the tree first, so that the hash names what was built):"
echo "  run(command=\"COMMIT=$(git rev-parse HEAD) bash scripts/gpu_check.sh\"," \
  "carry=[\"build/gpu-check\"], timeout_s=540)"
