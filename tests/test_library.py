"""The library that serves the operator depends on torch's stable C shims alone
(scripts/check_library.py), so that it loads under every torch from the one it targets."""

import ast
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


# What only the tests use: their frameworks, and the modules of tests/.
TEST_MODULES = {"pytest", "hypothesis", *(path.stem for path in (ROOT / "tests").glob("*.py"))}


def test_the_package_holds_no_test_machinery():
    package = Path(mamba_state_ext.__file__).parent
    sources = list(package.rglob("*.py"))
    test_files = {path.name for path in (ROOT / "tests").rglob("*") if path.is_file()}
    shipped = {path.name for path in package.rglob("*") if path.is_file()}
    assert not shipped & test_files, "a file of tests/ is in the package"
    assert not [path for path in sources if path.name.startswith(("test_", "conftest"))]
    imports = []
    for path in sources:
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0:
                names = [node.module]
            else:
                continue
            imports += [
                f"{path.name}: {name}" for name in names if name.split(".")[0] in TEST_MODULES
            ]
    assert not imports, imports
