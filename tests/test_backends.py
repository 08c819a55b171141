"""How the op comes to exist: the compiled library or the Python fallback, what backend() says,
and that both backends compute the same thing."""

import json
import types
from pathlib import Path

import pytest
import torch

import mamba_state_ext
from helpers import COMPILED, run_python
from mamba_state_ext import _loader, fallback


@COMPILED
@pytest.mark.parametrize("name", list(fallback.SCHEMAS))
def test_compiled_schema_is_the_fallback_schema(name):
    schema = getattr(torch.ops.mamba_state, name).default._schema
    assert str(schema) == "mamba_state::" + fallback.SCHEMAS[name]


@COMPILED
def test_backend_reports_build_facts():
    backend = mamba_state_ext.backend()
    assert backend.build["torch"] == torch.__version__.split("+")[0]
    if backend.build["cuda"] == "none":
        assert backend.cuda in ("python", "none")
    else:
        assert backend.cuda == "compiled"
        assert backend.build["archs"], "a CUDA build lists its architectures"
    assert backend.library and Path(backend.library).exists()
    assert "compiled" in str(backend)
    # The facts come from the library's own operator, which C++ servers call too.
    assert _loader.parse_build_info(torch.ops.mamba_state.build_info()) == backend.build


SCENARIO = """
    import json, torch, mamba_state_ext
    generator = torch.Generator().manual_seed(11)
    states = [torch.randn(3, 13, 5, 7, generator=generator),
              torch.randn(3, 13, 9, 3, generator=generator).bfloat16()]
    intermediates = [torch.randn(3, 6, 4, 5, 7, generator=generator).half(),
                     torch.randn(3, 6, 4, 9, 3, generator=generator).bfloat16()]
    slots = torch.tensor([12, 0, 5, 7, 3, -1], dtype=torch.int32)
    steps = torch.tensor([3, 0, 1, 2, 0, -1])
    status = torch.empty(6, dtype=torch.int32)
    torch.ops.mamba_state.update(states, intermediates, slots, steps, step_offset=0,
                                 entry_status=status)
    print(json.dumps({"backend": mamba_state_ext.backend().name,
                      "states": [s.float().flatten().tolist() for s in states],
                      "status": status.tolist()}))
"""


@COMPILED
def test_fallback_agrees_with_compiled():
    results = {}
    for choice in ("compiled", "python"):
        process = run_python(SCENARIO, MAMBA_STATE_EXT_BACKEND=choice)
        assert process.returncode == 0, process.stderr
        results[choice] = json.loads(process.stdout)
        assert results[choice].pop("backend") == choice
    assert results["compiled"] == results["python"]


def test_python_backend_by_environment():
    process = run_python(
        "import mamba_state_ext; print(mamba_state_ext.backend())", MAMBA_STATE_EXT_BACKEND="python"
    )
    assert process.returncode == 0, process.stderr
    assert process.stdout.startswith("python")
    assert "MAMBA_STATE_EXT_BACKEND=python" in process.stdout


def test_invalid_backend_choice():
    process = run_python("import mamba_state_ext", MAMBA_STATE_EXT_BACKEND="triton")
    assert process.returncode != 0
    expected = "MAMBA_STATE_EXT_BACKEND must be auto, compiled or python (got 'triton')"
    assert expected in process.stderr


def test_missing_library_says_why():
    missing = "/nonexistent/libmamba_state_ops.so"
    process = run_python("import mamba_state_ext", MAMBA_STATE_EXT_BACKEND="compiled",
                         MAMBA_STATE_EXT_LIBRARY=missing)
    assert process.returncode != 0
    assert f"MAMBA_STATE_EXT_LIBRARY={missing} failed to load" in process.stderr
    process = run_python("import mamba_state_ext; print(mamba_state_ext.backend())",
                         MAMBA_STATE_EXT_BACKEND="auto", MAMBA_STATE_EXT_LIBRARY=missing)
    assert process.returncode == 0, process.stderr
    assert process.stdout.startswith("python") and missing in process.stdout


def test_library_from_another_torch_says_rebuild():
    error = OSError("_C.so: undefined symbol: _ZN3c104impl3cow11cow_deleterEPv")
    message = _loader._explain(error, "the compiled library mamba_state_ext._C")
    assert "does not match the running torch" in message
    assert "rebuild it with: pip install --no-build-isolation -e ." in message
    with pytest.warns(RuntimeWarning, match="built against torch 2.4.0 .* rebuild it with"):
        _loader._warn_if_other_torch({"torch": "2.4.0"})


def test_unbuilt_library_says_build():
    message = _loader._explain(ModuleNotFoundError("No module named 'mamba_state_ext._C'"),
                               "the compiled library mamba_state_ext._C")
    assert "is not built" in message and "build it with: pip install" in message


def test_build_facts_are_readable():
    assert _loader.parse_build_info("torch=2.14.1;cuda=12080;archs=800,900,1000") == {
        "torch": "2.14.1", "cuda": "12.8", "archs": "8.0,9.0,10.0"}
    assert _loader.parse_build_info("torch=2.5.1;cuda=none") == {"torch": "2.5.1", "cuda": "none"}


def test_a_library_of_another_version_is_named(monkeypatch):
    """A library without mamba_state::build_info (built from another version) is refused with
    what to do, not an AttributeError."""
    no_operator = types.SimpleNamespace(ops=types.SimpleNamespace(mamba_state=object()))
    monkeypatch.setattr(_loader, "torch", no_operator)
    with pytest.raises(RuntimeError, match="has no mamba_state::build_info operator: it was built "
                                           "from another version of mamba_state_ext; rebuild"):
        _loader._read_build_info("MAMBA_STATE_EXT_LIBRARY=/old/libmamba_state_ops.so")
