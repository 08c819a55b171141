"""The library that serves the operator depends on torch's stable C shims alone
(scripts/check_library.py), so that it loads under every torch from the one it targets."""

import shutil
import sys
from pathlib import Path

import pytest
from helpers import COMPILED, ROOT

import mamba_state_ext

sys.path.insert(0, str(ROOT / "scripts"))
import check_library


@COMPILED
@pytest.mark.skipif(
    shutil.which("nm") is None or shutil.which("readelf") is None,
    reason="needs binutils (nm, readelf)",
)
def test_the_loaded_library_uses_the_stable_abi_only():
    assert check_library.library_problems(Path(mamba_state_ext.backend().library)) == []


def test_the_package_holds_no_test_machinery():
    package = Path(mamba_state_ext.__file__).parent
    names = {path.name for path in package.rglob("*.py")}
    assert not names & {"testing.py", "sglang_kernels.py", "conftest.py"}
    assert not list(package.rglob("test_*.py"))
