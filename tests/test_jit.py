"""mamba_state_ext.jit.load(): the same operator, built in the running process (a notebook)."""

import pytest
from helpers import run_python

BUILD_IN_A_FRESH_PROCESS = """
    import torch, mamba_state_ext
    from mamba_state_ext import jit
    assert mamba_state_ext.backend().name == "python"
    path = jit.load(build_directory={build_directory!r})
    backend = mamba_state_ext.backend()
    assert backend.name == "compiled" and backend.library == path, backend
    states = [torch.zeros(3, 5, 4, 2), torch.zeros(3, 5, 7, dtype=torch.bfloat16)]
    caches = [torch.randn(3, 2, 4, 4, 2), torch.randn(3, 2, 4, 7)]
    torch.ops.mamba_state.update(states, caches, torch.tensor([4, 1]), torch.tensor([2, 3]))
    assert torch.equal(states[0][:, 4], caches[0][:, 0, 2])
    assert torch.equal(states[1][:, 1], caches[1][:, 1, 3].bfloat16())
    assert jit.load() == path  # a second call loads nothing
    torch.library.opcheck(torch.ops.mamba_state.update.default,
                          (states, caches, torch.tensor([4, 1]), torch.tensor([2, -1])))
    print("jit ok")
"""


@pytest.mark.build
def test_jit_build_replaces_the_fallback(tmp_path):
    process = run_python(
        BUILD_IN_A_FRESH_PROCESS.format(build_directory=str(tmp_path)),
        MAMBA_STATE_EXT_BACKEND="python",
    )
    assert process.returncode == 0, process.stdout + process.stderr
    assert "built and loaded" in process.stdout and "nothing loaded" in process.stdout
    assert "jit ok" in process.stdout


def test_jit_leaves_a_loaded_library_alone():
    import mamba_state_ext
    from mamba_state_ext import jit

    if mamba_state_ext.backend().name != "compiled":
        pytest.skip("needs a compiled library already loaded")
    assert jit.load() == mamba_state_ext.backend().library


def test_default_build_directory_honours_torch_extensions_dir(monkeypatch, tmp_path):
    from mamba_state_ext import jit

    monkeypatch.setenv("TORCH_EXTENSIONS_DIR", str(tmp_path))
    assert jit.default_build_directory(False).parent == tmp_path
    monkeypatch.delenv("TORCH_EXTENSIONS_DIR")
    assert jit.default_build_directory(True).parent != tmp_path
    assert jit.default_build_directory(True).name.endswith("-cuda")
