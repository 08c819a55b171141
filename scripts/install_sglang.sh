#!/usr/bin/env bash
# Every SGLang release the integration takes over (SGLANG_RELEASES in mamba_state_ext/
# integrations/sglang.py), for the parity and plugin tests on a machine without a GPU: each
# release's wheel into build/wheels/ (the parity tests read its kernels from there), and each
# installed aside, without its dependencies, into build/sglang/RELEASE (the plugin tests put it on
# a child process's path, where SGLang's own plugin loader runs); then what importing SGLang's
# plugin loader and attention backend needs beside it (tests/sglang-imports.txt), into this
# environment. Needs mamba_state_ext installed (it reads the list from the package).
set -euo pipefail
shopt -s nullglob
cd "$(dirname "$0")/.."
releases=$(python -c "from mamba_state_ext.integrations.sglang import SGLANG_RELEASES as r; print(*r)")
abi=$(python -c "import sys; print(f'cp{sys.version_info.major}{sys.version_info.minor}')")
for release in $releases; do
  pip download -q --no-deps "sglang==$release" -d build/wheels
  # This Python's wheel (build/wheels/ may hold another Python's too).
  candidates=(build/wheels/sglang-"$release"-"$abi"-*.whl build/wheels/sglang-"$release"-py3-*.whl)
  wheel=${candidates[0]:?no sglang $release wheel for $abi in build/wheels}
  if [ ! -f "build/sglang/$release/sglang/__init__.py" ]; then
    rm -rf "build/sglang/$release"
    pip install -q --no-deps --no-compile --target "build/sglang/$release" "$wheel"
  fi
  echo "sglang $release: $wheel, installed aside in build/sglang/$release"
done
pip install -q -r tests/sglang-imports.txt
