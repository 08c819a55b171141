"""The SGLang plugin, through SGLang's own plugin loader (sglang_plugin_child.py runs a process as
SGLang starts one): load_plugins() finds the entry point; the names SGLang's attention backend
calls are then ours for CUDA tensors, writing what SGLang's kernels write, and SGLang's for the
others; MAMBA_STATE_EXT_SGLANG=0, an SGLANG_PLUGINS list without it, another SGLang release, or
no compiled CUDA kernel leave SGLang's functions alone. Needs sglang installed as CI does
(scripts/install_sglang.sh); skips and says so otherwise."""

from __future__ import annotations

import functools
import importlib.metadata
import inspect
import json

import pytest
import sglang_kernels
from helpers import run_python

import mamba_state_ext
from mamba_state_ext.integrations import sglang, sglang_plugin

try:
    INSTALLED = importlib.metadata.version("sglang")
except importlib.metadata.PackageNotFoundError:
    INSTALLED = None
NEEDS_SGLANG = pytest.mark.skipif(
    INSTALLED is None, reason="sglang is not installed: bash scripts/install_sglang.sh"
)
TAKES_OVER = pytest.mark.skipif(
    sglang_plugin.reason_to_stay_out({}, INSTALLED, mamba_state_ext.backend()) is not None,
    reason=f"the plugin stays out here: "
    f"{sglang_plugin.reason_to_stay_out({}, INSTALLED, mamba_state_ext.backend())}",
)
LOG_TAKEN = "mamba_state_ext: SGLang's scatter_mamba_states_after_mtp_verify"
LOG_STAYS = "mamba_state_ext: SGLang's own Mamba state kernels stay"


def run_sglang_process(**environment):
    process = run_python(
        "import runpy; runpy.run_path('sglang_plugin_child.py')",
        TRITON_INTERPRET="1",
        **environment,
    )
    assert process.returncode == 0, process.stdout + process.stderr
    return json.loads(process.stdout.splitlines()[-1]), process.stderr


@NEEDS_SGLANG
@TAKES_OVER
def test_sglang_commits_through_ours():
    if sglang_kernels.find_wheel() is None:
        pytest.skip("no sglang wheel in build/wheels/ for the untouched copy of its kernels")
    result, log = run_sglang_process(SGLANG_PARITY="1")
    for name, hooked in result["hooked"].items():
        assert hooked == {"kernel_module": True, "backend_module": True}, name
    assert set(result["hooked"]) == set(sglang_plugin.TAKEN_OVER)
    # Pools that say they are on CUDA went to our operator and got SGLang's bytes.
    assert all(result["operator_calls"].values()), result["operator_calls"]
    # Any other tensors go to SGLang's own function, which refuses CPU tensors.
    assert "only supports CUDA/XPU tensors" in result["cpu_tensors"]
    assert log.count(LOG_TAKEN) == 1, "one line per process says what is replaced"


@NEEDS_SGLANG
@pytest.mark.parametrize(
    "environment",
    [{"MAMBA_STATE_EXT_SGLANG": "0"}, {"SGLANG_PLUGINS": "some_other_plugin"}],
    ids=["switched-off", "not-listed"],
)
def test_sglang_keeps_its_own(environment):
    result, log = run_sglang_process(**environment)
    for name, hooked in result["hooked"].items():
        assert not hooked["kernel_module"], name
    if "MAMBA_STATE_EXT_SGLANG" in environment:
        assert f"{LOG_STAYS}: MAMBA_STATE_EXT_SGLANG=0" in log
    else:
        assert "Skipping plugin mamba_state_ext (not in SGLANG_PLUGINS)" in log


def test_it_stays_out_unless_checked_and_compiled():
    compiled = mamba_state_ext.Backend("compiled", "compiled", "/lib.so", {}, "")
    assert sglang_plugin.reason_to_stay_out({}, sglang.VERSION, compiled) is None
    why = sglang_plugin.reason_to_stay_out({}, "0.5.24", compiled)
    assert why.startswith(f"SGLang 0.5.24 is not {sglang.VERSION}")
    assert sglang_plugin.reason_to_stay_out({}, None, compiled).startswith("SGLang None is not")
    for cuda in ("python", "none"):
        without = mamba_state_ext.Backend("compiled", cuda, "/lib.so", {}, "")
        why = sglang_plugin.reason_to_stay_out({}, sglang.VERSION, without)
        assert why.startswith("its compiled CUDA kernel does not serve CUDA tensors here")
    assert (
        sglang_plugin.reason_to_stay_out({"MAMBA_STATE_EXT_SGLANG": "0"}, sglang.VERSION, compiled)
        == "MAMBA_STATE_EXT_SGLANG=0"
    )


class LooksLike:
    """A stand-in for the first argument: only its device is read."""

    def __init__(self, is_cuda):
        self.is_cuda = is_cuda


@pytest.mark.parametrize("by_keyword", [False, True], ids=["positional", "keyword"])
@pytest.mark.parametrize("is_cuda", [True, False], ids=["cuda", "cpu"])
def test_the_hook_sends_cuda_tensors_to_ours(is_cuda, by_keyword):
    calls = []

    def ours(dst, src, dst_indices_raw, step_indices_raw, src_indices_raw=None):
        calls.append(("ours", dst, src, src_indices_raw))

    def original(*args, **kwargs):
        calls.append(("sglang", args, kwargs))

    hook = sglang_plugin.around("fused_mamba_state_scatter_with_mask", ours)
    dst = LooksLike(is_cuda)
    if by_keyword:
        hook(original, dst=dst, src="src", dst_indices_raw=1, step_indices_raw=2)
    else:
        hook(original, dst, "src", 1, 2, src_indices_raw=3)
    if not is_cuda:
        assert calls[0][0] == "sglang"
    else:
        assert calls == [("ours", dst, "src", None if by_keyword else 3)]


def taken_by_ours(name: str, first) -> bool:
    """Whether the hook of SGLang's `name`, given its first argument by name, calls ours."""
    seen = []

    @functools.wraps(getattr(sglang, name))  # ours, as far as its signature goes
    def ours(*args, **kwargs):
        seen.append(kwargs)

    def original(*args, **kwargs):
        seen.append("sglang")

    parameter = next(iter(inspect.signature(getattr(sglang, name)).parameters))
    sglang_plugin.around(name, ours)(original, **{parameter: first})
    return seen == [{parameter: first}]


def test_the_hook_reaches_the_tensor_of_each_first_parameter():
    caches = type("Caches", (), {"temporal": LooksLike(True)})()
    firsts = {
        "scatter_mamba_states_after_mtp_verify": caches,
        "track_mamba_states_all_layers": LooksLike(True),
        "track_mamba_states_if_needed": LooksLike(True),
        "fused_mamba_state_scatter_with_mask": LooksLike(True),
        "fused_conv_window_scatter_with_mask": LooksLike(True),
        "fused_conv_window_scatter_multi": [(LooksLike(True), None)],
    }
    assert set(firsts) == set(sglang_plugin.TAKEN_OVER)
    for name, first in firsts.items():
        assert taken_by_ours(name, first), name


def test_the_entry_point_is_declared():
    points = importlib.metadata.entry_points(group="sglang.srt.plugins")
    ours = [point for point in points if point.name == "mamba_state_ext"]
    assert [point.value for point in ours] == [
        "mamba_state_ext.integrations.sglang_plugin:register"
    ]
    assert ours[0].load() is sglang_plugin.register
