"""The compiled operator in fresh processes (process_child.py): a first call inside CUDA-graph
capture in both capture modes, from a fresh thread, on a side stream, with either CUDA module
loading mode, and a clean exit with work still queued. Each case must print its ``ok`` line and
exit 0. Without a GPU, the cases that need none still run on the CPU kernel, so that the child
script stays runnable."""

import pytest
from helpers import COMPILED, COMPILED_CUDA, CUDA, run_python

CUDA_CASES = [
    pytest.param(case, loading, marks=[CUDA, COMPILED_CUDA], id=f"{case}-{loading or 'default'}")
    for case, loading in [
        ("graph-global", None),
        ("graph-thread_local", None),
        ("graph-global", "EAGER"),
        ("graph-global", "LAZY"),
        ("thread", None),
        ("side-stream", None),
        ("teardown", None),
    ]
]


def run_case(case: str, device: str, loading: str | None = None) -> None:
    environment = {"MAMBA_STATE_EXT_BACKEND": "compiled"}
    if loading:
        environment["CUDA_MODULE_LOADING"] = loading
    process = run_python(
        f"import runpy, sys; sys.argv = ['process_child.py', {case!r}, {device!r}]; "
        "runpy.run_path('process_child.py', run_name='__main__')",
        **environment,
    )
    assert process.returncode == 0, (
        f"exit {process.returncode}\n{process.stdout}\n{process.stderr[-4000:]}"
    )
    assert f"ok {case}" in process.stdout.splitlines(), process.stdout


@pytest.mark.parametrize("case,loading", CUDA_CASES)
def test_case_in_a_fresh_process_on_cuda(case, loading):
    run_case(case, "cuda", loading)


@COMPILED
@pytest.mark.parametrize("case", ["thread", "teardown"])
def test_case_in_a_fresh_process_on_the_cpu(case):
    run_case(case, "cpu")
