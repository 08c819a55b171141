"""The SGLang plugin, through SGLang's own plugin loader, for every release it takes over
(sglang_plugin_child.py runs a process as SGLang starts one, with the release installed aside on
its path): load_plugins() finds the entry point; the names SGLang's attention backend calls are
then ours for CUDA tensors, writing what that release's kernels write, and SGLang's for the
others; MAMBA_STATE_EXT_SGLANG=0, an SGLANG_PLUGINS list without it, another SGLang release, or
no compiled CUDA kernel leave SGLang's functions alone. Needs the releases installed aside as CI
does (scripts/install_sglang.sh); skips and says so otherwise."""

from __future__ import annotations

import functools
import importlib.metadata
import inspect
import json
import os

import pytest
import sglang_kernels
from helpers import run_python

import mamba_state_ext
from mamba_state_ext.integrations import sglang, sglang_plugin
from mamba_state_ext.integrations.sglang import SGLANG_RELEASES

LOG_TAKEN = "'s scatter_mamba_states_after_mtp_verify, "
LOG_STAYS = "mamba_state_ext: SGLang's own Mamba state kernels stay"


def release_params(*, takes_over: bool):
    """One param per release, skipped where it is not installed aside (or, with takes_over,
    where the plugin would stay out here: no compiled CUDA kernel)."""
    params = []
    missing = sglang_kernels.imports_missing()
    for release in SGLANG_RELEASES:
        why = None
        if sglang_kernels.site(release) is None:
            why = f"sglang {release} is not installed aside: {sglang_kernels.INSTALL}"
        elif missing:
            why = f"what SGLang's import needs is not installed here ({', '.join(missing)})"
        elif takes_over:
            stays = sglang_plugin.reason_to_stay_out({}, release, mamba_state_ext.backend())
            why = stays and f"the plugin stays out here: {stays}"
        marks = [pytest.mark.skip(reason=why)] if why else []
        params.append(pytest.param(release, marks=marks, id=release))
    return params


def run_sglang_process(release: str, **environment):
    site = str(sglang_kernels.site(release))
    path = os.pathsep.join(filter(None, [site, os.environ.get("PYTHONPATH")]))
    process = run_python(
        "import runpy; runpy.run_path('sglang_plugin_child.py')",
        TRITON_INTERPRET="1",
        PYTHONPATH=path,
        **environment,
    )
    assert process.returncode == 0, process.stdout + process.stderr
    result = json.loads(process.stdout.splitlines()[-1])
    assert result["release"] == release, "the child imported another SGLang"
    return result, process.stderr


@pytest.mark.parametrize("release", release_params(takes_over=True))
def test_sglang_commits_through_ours(release):
    if sglang_kernels.find_source(release) is None:
        pytest.skip(f"no sglang {release} wheel for the untouched copy of its kernels")
    result, log = run_sglang_process(release, SGLANG_PARITY="1")
    for name, hooked in result["hooked"].items():
        assert hooked == {"kernel_module": True, "backend_module": True}, name
    assert set(result["hooked"]) == set(sglang_plugin.TAKEN_OVER)
    # Pools that say they are on CUDA went to our operator and got SGLang's bytes.
    assert all(result["operator_calls"].values()), result["operator_calls"]
    # Any other tensors go to SGLang's own function, which refuses CPU tensors.
    assert "only supports CUDA/XPU tensors" in result["cpu_tensors"]
    assert log.count(f"mamba_state_ext: SGLang {release}{LOG_TAKEN}") == 1, (
        "one line per process says what is replaced"
    )
    assert "every call checked" not in log


@pytest.mark.parametrize("release", release_params(takes_over=True))
def test_the_log_says_when_every_call_is_checked(release):
    result, log = run_sglang_process(release, MAMBA_STATE_EXT_CHECK="1")
    assert all(hooked["kernel_module"] for hooked in result["hooked"].values())
    assert "every call checked (MAMBA_STATE_EXT_CHECK=1)" in log


@pytest.mark.parametrize("release", release_params(takes_over=False))
@pytest.mark.parametrize(
    "environment",
    [{"MAMBA_STATE_EXT_SGLANG": "0"}, {"SGLANG_PLUGINS": "some_other_plugin"}],
    ids=["switched-off", "not-listed"],
)
def test_sglang_keeps_its_own(release, environment):
    result, log = run_sglang_process(release, **environment)
    for name, hooked in result["hooked"].items():
        assert not hooked["kernel_module"], name
    if "MAMBA_STATE_EXT_SGLANG" in environment:
        assert f"{LOG_STAYS}: MAMBA_STATE_EXT_SGLANG=0" in log
    else:
        assert "Skipping plugin mamba_state_ext (not in SGLANG_PLUGINS)" in log


@pytest.mark.parametrize("release", release_params(takes_over=False))
def test_sglang_logs_a_bad_switch_and_keeps_its_own(release):
    result, log = run_sglang_process(release, MAMBA_STATE_EXT_SGLANG="false")
    for name, hooked in result["hooked"].items():
        assert not hooked["kernel_module"], name
    assert "Failed to execute general plugin: mamba_state_ext" in log
    assert "MAMBA_STATE_EXT_SGLANG must be 0 or 1 (got 'false')" in log


def test_it_stays_out_unless_checked_and_compiled():
    compiled = mamba_state_ext.Backend("compiled", "compiled", "/lib.so", {}, "")
    for release in SGLANG_RELEASES:
        assert sglang_plugin.reason_to_stay_out({}, release, compiled) is None
    listed = ", ".join(SGLANG_RELEASES)
    why = sglang_plugin.reason_to_stay_out({}, "0.5.24", compiled)
    assert why == (
        f"SGLang 0.5.24 is not one of the releases whose functions these were checked against "
        f"({listed})"
    )
    assert sglang_plugin.reason_to_stay_out({}, None, compiled).startswith("SGLang None is not")
    for cuda in ("python", "none"):
        without = mamba_state_ext.Backend("compiled", cuda, "/lib.so", {}, "")
        why = sglang_plugin.reason_to_stay_out({}, SGLANG_RELEASES[-1], without)
        assert why.startswith("its compiled CUDA kernel does not serve CUDA tensors here")
    assert (
        sglang_plugin.reason_to_stay_out(
            {"MAMBA_STATE_EXT_SGLANG": "0"}, SGLANG_RELEASES[-1], compiled
        )
        == "MAMBA_STATE_EXT_SGLANG=0"
    )


@pytest.mark.parametrize("value", ["false", "yes", "2"])
def test_a_switch_other_than_0_or_1_is_an_error(value, monkeypatch):
    compiled = mamba_state_ext.Backend("compiled", "compiled", "/lib.so", {}, "")
    environment = {"MAMBA_STATE_EXT_SGLANG": value}
    with pytest.raises(
        ValueError, match=f"MAMBA_STATE_EXT_SGLANG must be 0 or 1 \\(got '{value}'\\)"
    ):
        sglang_plugin.reason_to_stay_out(environment, SGLANG_RELEASES[-1], compiled)
    assert (
        sglang_plugin.reason_to_stay_out(
            {"MAMBA_STATE_EXT_SGLANG": "1"}, SGLANG_RELEASES[-1], compiled
        )
        is None
    )
    monkeypatch.setenv("MAMBA_STATE_EXT_CHECK", value)
    with pytest.raises(
        ValueError, match=f"MAMBA_STATE_EXT_CHECK must be 0 or 1 \\(got '{value}'\\)"
    ):
        sglang.checking()
    for value, checked in [("0", False), ("1", True), ("", False)]:
        monkeypatch.setenv("MAMBA_STATE_EXT_CHECK", value)
        assert sglang.checking() is checked


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
