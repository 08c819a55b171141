"""The one list of sources, flags and architectures (mamba_state_ext/build_config.py), and the
CUDA kernel's compiled form, read without a GPU."""

import subprocess
import sys
from pathlib import Path

import pytest
from helpers import ROOT

from mamba_state_ext import build_config


def test_sources():
    cpu = build_config.sources(ROOT, with_cuda=False, python_module=False)
    assert "csrc/cpu/update_cpu.cpp" in cpu and "csrc/torch_bindings.cpp" in cpu
    assert not any(path.endswith(".cu") for path in cpu)
    assert "csrc/python_module.cpp" not in cpu
    full = build_config.sources(ROOT, with_cuda=True, python_module=True)
    assert set(full) - set(cpu) == {"csrc/cuda/update_cuda.cu", "csrc/python_module.cpp"}
    stems = [Path(path).stem for path in full]
    assert len(stems) == len(set(stems)), "torch's ninja build needs distinct file stems"


def test_release_architectures_follow_the_toolkit():
    assert build_config.release_arch_list((12, 4)) == "8.0;8.6;8.9;9.0+PTX"
    assert build_config.release_arch_list((13, 0)) == "8.0;8.6;8.9;9.0;10.0;10.3;12.0+PTX"


def test_gencode_flags():
    assert build_config.gencode_flags("8.0;9.0+PTX") == [
        "-gencode=arch=compute_80,code=sm_80",
        "-gencode=arch=compute_90,code=sm_90",
        "-gencode=arch=compute_90,code=compute_90",
    ]
    assert build_config.gencode_flags("9.0a 10.0") == [
        "-gencode=arch=compute_90a,code=sm_90a", "-gencode=arch=compute_100,code=sm_100"]
    with pytest.raises(ValueError, match="unknown CUDA architecture 'Hopper'"):
        build_config.gencode_flags("Hopper")


def test_no_fast_math():
    assert not any("fast_math" in flag or "ftz" in flag for flag in build_config.nvcc_flags())


def test_cuda_switch(monkeypatch):
    monkeypatch.setenv(build_config.CUDA_ENV, "0")
    assert build_config.configure_cuda("13.0") is False
    monkeypatch.setenv(build_config.CUDA_ENV, "1")
    with pytest.raises(RuntimeError, match="torch is a CPU build"):
        build_config.configure_cuda(None)
    monkeypatch.setenv(build_config.CUDA_ENV, "maybe")
    with pytest.raises(ValueError, match="must be 0, 1 or auto"):
        build_config.configure_cuda("13.0")


def test_cmake_reads_the_one_list_of_flags():
    """CMake reads build_flags.json, as build_config.py does, and keeps no flag of its own; its
    sources are setup.py's, without the Python module."""
    text = (ROOT / "CMakeLists.txt").read_text()
    assert "mamba_state_ext/build_flags.json" in text
    for flag in build_config.NVCC_FLAGS + build_config.CXX_FLAGS:
        assert f" {flag}" not in text.replace("# ", ""), f"CMakeLists.txt names {flag} itself"
    assert "csrc/*.cpp csrc/cpu/*.cpp csrc/cuda/*.cpp" in text and "csrc/cuda/*.cu" in text
    assert "list(REMOVE_ITEM sources ${CMAKE_CURRENT_SOURCE_DIR}/csrc/python_module.cpp)" in text


@pytest.mark.build
@pytest.mark.skipif(build_config.find_cuda_home() is None, reason="needs a CUDA toolkit (nvcc)")
def test_kernel_registers_spills_and_vector_accesses():
    """scripts/check_sass.py: no spills or local memory, 128-bit loads and stores, 4 in flight."""
    result = subprocess.run([sys.executable, str(ROOT / "scripts" / "check_sass.py")],
                            capture_output=True, text=True, timeout=900)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "OK: no spills" in result.stdout
