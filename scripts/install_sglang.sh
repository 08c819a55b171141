#!/usr/bin/env bash
# Installs the SGLang release the integration is checked against (mamba_state_ext/integrations/
# sglang.py: VERSION) without its GPU dependencies, plus what importing its plugin loader and
# attention backend needs (tests/sglang-imports.txt): enough for tests/test_sglang_plugin.py on a
# machine without a GPU. Its wheel goes to build/wheels/, where the parity tests read its kernels.
set -euo pipefail
cd "$(dirname "$0")/.."
version=$(sed -n 's/^VERSION = "\(.*\)"$/\1/p' mamba_state_ext/integrations/sglang.py)
[ -n "$version" ] || { echo "no VERSION in mamba_state_ext/integrations/sglang.py" >&2; exit 1; }
ls build/wheels/sglang-"$version"-*.whl >/dev/null 2>&1 \
  || pip download --no-deps "sglang==$version" -d build/wheels
pip install --no-deps build/wheels/sglang-"$version"-*.whl
pip install -r tests/sglang-imports.txt
