"""The SGLang plugin, through SGLang's own plugin loader (sglang_plugin_child.py runs a process as
SGLang starts one): load_plugins() finds the entry point; the names SGLang's attention backend
calls are then ours for CUDA tensors, writing what SGLang's kernels write, and SGLang's for the
others; MAMBA_STATE_EXT_SGLANG=0, an SGLANG_PLUGINS list without it, another SGLang release, or
no compiled CUDA kernel leave SGLang's functions alone. Needs sglang installed as CI does
(scripts/install_sglang.sh); skips and says so otherwise."""

from __future__ import annotations

import importlib.metadata
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


def test_the_entry_point_is_declared():
    points = importlib.metadata.entry_points(group="sglang.srt.plugins")
    ours = [point for point in points if point.name == "mamba_state_ext"]
    assert [point.value for point in ours] == [
        "mamba_state_ext.integrations.sglang_plugin:register"
    ]
    assert ours[0].load() is sglang_plugin.register
