"""The one list of sources, flags and architectures (mamba_state_ext/build_config.py), and the
CUDA kernel's compiled form, read without a GPU."""

import subprocess
import sys
from pathlib import Path

import pytest
from helpers import ROOT

from mamba_state_ext import build_config

CSRC = build_config.SOURCE_DIR


def test_sources():
    cpu = build_config.sources(with_cuda=False, relative_to=CSRC)
    assert "cpu/copy_cpu.cpp" in cpu and "registration.cpp" in cpu
    assert not any(path.startswith(("cuda/", "grid/")) for path in cpu)
    full = build_config.sources(with_cuda=True, relative_to=CSRC)
    assert set(full) - set(cpu) == {"cuda/copy_cuda.cu", "grid/launch_plan.cpp"}
    stems = [Path(path).stem for path in full]
    assert len(stems) == len(set(stems)), "torch's ninja build needs distinct file stems"
    cuda_dir = {path.name for path in (CSRC / "cuda").iterdir()}
    assert cuda_dir == {"copy_cuda.cu"}, "csrc/cuda/ holds what nvcc compiles and nothing else"
    assert build_config.sources(with_cuda=True) == [str(CSRC / path) for path in full]


def test_every_translation_unit_targets_the_stable_abi():
    """TORCH_TARGET_VERSION on every C++ and CUDA translation unit: with it the unstable headers
    refuse to compile, and the library imports nothing that the targeted torch lacks."""
    target = build_config.TARGET_DEFINE
    assert target == "-DTORCH_TARGET_VERSION=0x020a000000000000"
    assert target in build_config.cxx_flags(False) and target in build_config.cxx_flags(True)
    assert target in build_config.nvcc_flags()


def test_every_constant_reaches_the_cpp_code():
    """Each value of constants.json becomes a definition that csrc/constants.h requires."""
    header = (CSRC / "constants.h").read_text()
    defines = build_config.constant_defines()
    values = [
        build_config.CONSTANTS[key]
        for key in ("max_state_dims", "overlap_budget", "max_followed_blocks")
    ]
    values += list(build_config.CONSTANTS["entry_status"].values())
    assert [int(define.split("=")[1]) for define in defines] == values
    for define in defines:
        name = define.removeprefix("-D").split("=")[0]
        assert f"defined({name})" in header, f"csrc/constants.h does not require {name}"
        assert define in build_config.cxx_flags(False) and define in build_config.nvcc_flags()


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
        "-gencode=arch=compute_90a,code=sm_90a",
        "-gencode=arch=compute_100,code=sm_100",
    ]
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


@pytest.mark.skipif(build_config.find_cuda_home() is None, reason="needs a CUDA toolkit (nvcc)")
def test_a_toolkit_of_another_cuda_major_than_torchs(monkeypatch, capsys):
    """torch's build helpers refuse it: auto builds without CUDA and says why; 1 is an error."""
    major, minor = build_config.nvcc_version(build_config.find_cuda_home())
    other = f"{major - 1}.8"
    monkeypatch.delenv(build_config.CUDA_ENV, raising=False)
    assert build_config.configure_cuda(other) is False
    said = capsys.readouterr().out
    assert f"is {major}.{minor} and torch is built with CUDA {other}" in said
    assert f"a toolkit of CUDA {major - 1}" in said
    with pytest.raises(RuntimeError, match=f"and torch is built with CUDA {other}"):
        build_config.configure_cuda(other, "1")


def test_cmake_reads_the_one_list_of_flags():
    """CMake reads build_flags.json and constants.json, as build_config.py does, and keeps no flag
    of its own; its sources are setup.py's."""
    text = (ROOT / "CMakeLists.txt").read_text()
    assert "mamba_state_ext/build_flags.json" in text and "mamba_state_ext/constants.json" in text
    for flag in build_config.NVCC_FLAGS + build_config.CXX_FLAGS:
        assert f" {flag}" not in text.replace("# ", ""), f"CMakeLists.txt names {flag} itself"
    assert "${csrc}/*.cpp ${csrc}/cpu/*.cpp" in text
    assert "${csrc}/grid/*.cpp ${csrc}/cuda/*.cu" in text


@pytest.mark.build
@pytest.mark.skipif(build_config.find_cuda_home() is None, reason="needs a CUDA toolkit (nvcc)")
def test_kernel_registers_spills_and_vector_accesses():
    """scripts/check_sass.py: no spills or local memory, 128-bit loads and stores, 4 in flight."""
    result = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "check_sass.py")],
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "OK: no spills" in result.stdout
