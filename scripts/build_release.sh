#!/usr/bin/env bash
# A release of this checkout into DIR: the sdist and the wheel, each checked as a package index
# and a user would check it.
#
#   pip install -r scripts/release-requirements.txt
#   bash scripts/build_release.sh DIR
#
# - The sdist (python -m build --sdist; MANIFEST.in): setup.py, pyproject.toml, CMakeLists.txt and
#   the package with its C++/CUDA sources and JSON files; it builds with
#   `pip install --no-build-isolation` beside any torch from 2.10.
# - The wheel (pip wheel), built against the torch installed here (any from 2.10: the library
#   targets the stable ABI of build_flags.json's torch_target, so one wheel serves them all), with
#   the CUDA kernel for every release architecture unless TORCH_CUDA_ARCH_LIST names fewer, then
#   tagged by auditwheel repair for the manylinux policy its symbols allow, torch's own libraries
#   excluded (the torch dependency provides them; they are never bundled). Its version is
#   setup.py's VERSION for the default CUDA major (build_flags.json), VERSION+cuNN for another and
#   VERSION+cpu without CUDA: those two go to indexes of their own, as torch's variants do.
# - The checks: scripts/check_release.py (tag, dependencies, version, stable ABI, sources) and
#   twine check --strict.
set -euo pipefail
[ $# -eq 1 ] || { echo "usage: bash scripts/build_release.sh DIR" >&2; exit 2; }
mkdir -p "$1"
out=$(cd "$1" && pwd)
cd "$(dirname "$0")/.."
scratch=$(mktemp -d)
trap 'rm -rf "$scratch"' EXIT
rm -f "$out"/mamba_state_ext-*.whl "$out"/mamba_state_ext-*.tar.gz
python -m build --sdist --no-isolation --outdir "$out" .
pip wheel --no-build-isolation --no-deps --wheel-dir "$scratch" .
auditwheel repair --exclude libtorch_cpu.so --exclude libtorch_cuda.so --wheel-dir "$out" \
  "$scratch"/mamba_state_ext-*.whl
python scripts/check_release.py "$out"
twine check --strict "$out"/mamba_state_ext-*
