"""A process as SGLang starts one: SGLang's own load_plugins(), then its attention backend module
imported. Prints one JSON object for test_sglang_plugin.py:

- "release": the SGLang release this process imported;
- "hooked": for each function the plugin takes over, whether the kernel module's name is now a
  wrapper of SGLang's original, and whether the backend module (where it imports the name) calls
  that wrapper;
- with SGLANG_PARITY=1, "operator_calls": for each function, whether one call through the
  hooked name, on pools that say they are on CUDA (our operator then runs on the CPU), made
  mamba_state operator calls, after writing the same bytes as a copy of SGLang's kernels that no
  hook touched (its Triton kernels under the interpreter: run with TRITON_INTERPRET=1); and
  "cpu_tensors": what plain CPU tensors get (SGLang's original, which refuses them).
"""

from __future__ import annotations

import importlib.metadata
import json
import logging
import os
import sys

import torch

logging.basicConfig(level=logging.INFO, stream=sys.stderr)

import sglang.kernels.ops.mamba.mamba_state_scatter_triton as kernels  # noqa: E402

from mamba_state_ext.integrations import sglang_plugin  # noqa: E402

originals = {name: getattr(kernels, name) for name in sglang_plugin.TAKEN_OVER}

from sglang.srt.plugins import load_plugins  # noqa: E402

load_plugins()
import sglang.srt.layers.attention.hybrid_linear_attn_backend as backend  # noqa: E402

result = {"release": importlib.metadata.version("sglang"), "hooked": {}}
for name, original in originals.items():
    now = getattr(kernels, name)
    result["hooked"][name] = {
        "kernel_module": now is not original and getattr(now, "__wrapped__", None) is original,
        "backend_module": getattr(backend, name, now) is now,
    }

if os.environ.get("SGLANG_PARITY") == "1":
    import sglang_kernels
    import test_sglang_parity as parity

    release = result["release"]
    if sglang_kernels.find_source(release) is None:
        # Without it the reference would be the imported module, which the hooks changed.
        sys.exit(
            f"SGLANG_PARITY=1 needs SGLang {release}'s wheel, or the files extracted from it "
            f"(tests/sglang_kernels.py), for a copy of its kernels that no hook touched"
        )
    device = os.environ.get("SGLANG_DEVICE", "cpu")
    # A copy of the release's kernels that no hook touched.
    reference = sglang_kernels.load_scatter_kernels(release, on_cpu=device == "cpu")
    calls = {"count": 0}

    def counting(packet):
        def counted(*args, **kwargs):
            calls["count"] += 1
            return packet(*args, **kwargs)

        return counted

    for op_name in ("update", "copy_slots"):
        setattr(torch.ops.mamba_state, op_name, counting(getattr(torch.ops.mamba_state, op_name)))
    result["operator_calls"] = {}
    for name in originals:
        before = calls["count"]
        parity.compare_functions(
            getattr(reference, name),
            getattr(backend, name, getattr(kernels, name)),
            name,
            device,
            ours_looks_cuda=True,
        )
        result["operator_calls"][name] = calls["count"] > before
    pools, arguments = parity.function_call("fused_mamba_state_scatter_with_mask", "cpu")
    try:
        backend.fused_mamba_state_scatter_with_mask(*arguments(*pools))
        result["cpu_tensors"] = "accepted"
    except ValueError as error:
        result["cpu_tensors"] = str(error)

print(json.dumps(result))
