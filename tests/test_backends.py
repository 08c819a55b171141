"""How the op comes to exist: the compiled library or the Python fallback, what backend() says,
and that both backends compute the same thing."""

import dataclasses
import json
import shutil
import types
from pathlib import Path

import pytest
import torch
from helpers import COMPILED, run_python

import mamba_state_ext
from mamba_state_ext import _loader, fallback
from mamba_state_ext.calls import CopySlotsCall, UpdateCall


@COMPILED
@pytest.mark.parametrize("name", list(fallback.SCHEMAS))
def test_compiled_schema_is_the_fallback_schema(name):
    schema = getattr(torch.ops.mamba_state, name).default._schema
    assert str(schema) == "mamba_state::" + fallback.SCHEMAS[name]


@COMPILED
def test_backend_reports_build_facts():
    backend = mamba_state_ext.backend()
    assert backend.build["target"] == build_flags()["torch_target"]
    if backend.build["cuda"] == "none":
        assert backend.cuda in ("python", "none")
    else:
        assert backend.cuda == "compiled"
        assert backend.build["archs"], "a CUDA build lists its architectures"
    assert backend.library and Path(backend.library).exists()
    assert backend.build["cpu"] in ("default", "avx2", "avx512")
    assert "compiled" in str(backend) and f"CPU loops: {backend.build['cpu']}" in str(backend)
    # The facts come from the library's own operator, which C++ servers call too.
    assert _loader.parse_build_info(torch.ops.mamba_state.build_info()) == backend.build


def build_flags():
    return json.loads((Path(_loader.__file__).parent / "build_flags.json").read_text())


def test_pyproject_requires_the_targeted_torch():
    """pyproject.toml asks for the torch the library targets (build_flags.json), to build and
    to run."""
    pyproject = (Path(__file__).resolve().parent.parent / "pyproject.toml").read_text()
    floor = f'"torch>={build_flags()["torch_target"]}"'
    assert pyproject.count(floor) == 2, "build-system.requires and project.dependencies"


@pytest.mark.parametrize("name,call", [("update", UpdateCall), ("copy_slots", CopySlotsCall)])
def test_the_call_descriptions_follow_the_schemas(name, call):
    """calls.UpdateCall and CopySlotsCall: the schema's arguments, in order, with its defaults."""
    schema = torch._C.parse_schema("mamba_state::" + fallback.SCHEMAS[name])
    fields = dataclasses.fields(call)
    assert [f.name for f in fields] == [argument.name for argument in schema.arguments]
    for field, argument in zip(fields, schema.arguments):
        has_default = field.default is not dataclasses.MISSING
        assert has_default == argument.has_default_value(), field.name
        if has_default:
            assert field.default == argument.default_value, field.name


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
    process = run_python(
        "import mamba_state_ext",
        MAMBA_STATE_EXT_BACKEND="compiled",
        MAMBA_STATE_EXT_LIBRARY=missing,
    )
    assert process.returncode != 0
    assert f"MAMBA_STATE_EXT_LIBRARY={missing} failed to load" in process.stderr
    process = run_python(
        "import mamba_state_ext; print(mamba_state_ext.backend())",
        MAMBA_STATE_EXT_BACKEND="auto",
        MAMBA_STATE_EXT_LIBRARY=missing,
    )
    assert process.returncode == 0, process.stderr
    assert process.stdout.startswith("python") and missing in process.stdout


def test_an_older_torch_gets_the_fallback_and_the_reason(monkeypatch):
    monkeypatch.setattr(_loader, "torch_version", lambda: (2, 9))
    with pytest.raises(
        ImportError,
        match=r"torch .* is older than 2\.10, the oldest torch the "
        r"compiled library supports; upgrade torch",
    ):
        _loader._load_library()


def test_a_library_for_a_newer_torch_says_so():
    error = OSError("_C.abi3.so: undefined symbol: torch_new_shim_of_2_99")
    message = _loader._explain(error, "the compiled library _C.abi3.so")
    assert "needs a newer torch than" in message and "built for torch 2.10 or later" in message


def test_a_cuda_build_under_a_cpu_torch_says_what_to_install(monkeypatch):
    """torch.ops.load_library raises "Could not load this library" from the loader's error."""
    monkeypatch.setattr(_loader.torch.version, "cuda", None)
    missing = OSError("libtorch_cuda.so: cannot open shared object file: No such file or directory")
    try:
        raise OSError("Could not load this library: /x/_C.abi3.so") from missing
    except OSError as raised:
        error = raised
    message = _loader._explain(error, "the compiled library _C.abi3.so")
    assert "is a CUDA build" in message and "install a CUDA build of torch" in message
    assert "MAMBA_STATE_EXT_CUDA=0" in message and "libtorch_cuda.so: cannot open" in message


def test_unbuilt_library_says_build(monkeypatch):
    monkeypatch.setattr(_loader, "package_library", lambda: None)
    monkeypatch.delenv(_loader.LIBRARY_ENV, raising=False)
    with pytest.raises(ImportError, match="is not built; build it with: pip install"):
        _loader._load_library()


def test_build_facts_are_readable():
    info = "torch=2.14.1;target=2.10;cuda=12080;archs=800,900,1000;cpu=avx2"
    assert _loader.parse_build_info(info) == {
        "torch": "2.14.1",
        "target": "2.10",
        "cuda": "12.8",
        "archs": "8.0,9.0,10.0",
        "cpu": "avx2",
    }
    assert _loader.parse_build_info("torch=2.10.0;target=2.10;cuda=none") == {
        "torch": "2.10.0",
        "target": "2.10",
        "cuda": "none",
    }


def test_a_library_of_another_version_is_named(monkeypatch):
    """A library without mamba_state::build_info (built from another version) is refused with
    what to do, not an AttributeError."""
    no_operator = types.SimpleNamespace(ops=types.SimpleNamespace(mamba_state=object()))
    monkeypatch.setattr(_loader, "torch", no_operator)
    with pytest.raises(
        RuntimeError,
        match="has no mamba_state::build_info operator: it was built "
        "from another version of mamba_state_ext; rebuild",
    ):
        _loader._read_build_info("MAMBA_STATE_EXT_LIBRARY=/old/libmamba_state_ops.so")


@COMPILED
def test_a_second_copy_of_the_library_registers_nothing(tmp_path):
    """Two copies of the library in one process (the package's and a CMake build, say): the
    second says so and registers nothing; the first goes on serving. (torch::stable's own
    registration macros crash the process here.)"""
    copy = tmp_path / "second_copy.so"
    shutil.copy(mamba_state_ext.backend().library, copy)
    process = run_python(f"""
        import torch, mamba_state_ext
        torch.ops.load_library({str(copy)!r})
        states, caches = [torch.zeros(2, 5, 3)], [torch.randn(2, 3, 4, 3)]
        torch.ops.mamba_state.update(states, caches, torch.tensor([4]), torch.tensor([2]))
        assert torch.equal(states[0][:, 4], caches[0][:, 0, 2])
        print("served")
    """)
    assert process.returncode == 0, process.stderr
    assert "served" in process.stdout
    assert f"{copy} registers nothing" in process.stderr
    assert "the operator namespace mamba_state is defined already" in process.stderr


@COMPILED
def test_a_library_loaded_before_the_package_goes_on_serving(tmp_path):
    """A library that defined the operators before the package was imported (a CMake build,
    loaded by hand) keeps serving them, and the backend names what is loaded, not the package's
    own library. (No MAMBA_STATE_EXT_LIBRARY, which CI sets for the CMake build's run, unless
    the case sets one.)"""
    copy = tmp_path / "loaded_first.so"
    shutil.copy(mamba_state_ext.backend().library, copy)
    unset = {"MAMBA_STATE_EXT_LIBRARY": ""}
    process = run_python(
        f"""
        import torch
        torch.ops.load_library({str(copy)!r})
        import mamba_state_ext
        backend = mamba_state_ext.backend()
        assert backend.library == {str(copy)!r} and backend.build, backend
        states, caches = [torch.zeros(2, 5, 3)], [torch.randn(2, 3, 4, 3)]
        mamba_state_ext.update(states, caches, torch.tensor([4]), torch.tensor([2]))
        assert torch.equal(states[0][:, 4], caches[0][:, 0, 2])
        print(backend)
    """,
        **unset,
    )
    assert process.returncode == 0, process.stderr
    assert "registers nothing" not in process.stderr
    assert (
        "the library that defined mamba_state's operators before mamba_state_ext loaded serves "
        f"them (loaded: {copy})" in process.stdout
    )
    load_first = f"import torch; torch.ops.load_library({str(copy)!r}); import mamba_state_ext"
    for variable, value in (
        ("MAMBA_STATE_EXT_BACKEND", "python"),
        ("MAMBA_STATE_EXT_LIBRARY", "/elsewhere/libmamba_state_ops.so"),
    ):
        process = run_python(load_first, **{**unset, variable: value})
        assert process.returncode != 0
        assert (
            f"ImportError: {variable}={value}, but the library that defined mamba_state's "
            "operators before mamba_state_ext loaded serves them in this process "
            f"(loaded: {copy})" in process.stderr
        )
    # The library asked for, loaded first by hand, is simply the one in use.
    process = run_python(
        load_first + "; print(mamba_state_ext.backend().library)",
        MAMBA_STATE_EXT_LIBRARY=str(copy),
    )
    assert process.returncode == 0, process.stderr
    assert process.stdout.strip() == str(copy)
