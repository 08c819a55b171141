"""Builds mamba_state_ext/_C.abi3.so, the operator library: the CPU kernel always, the CUDA
kernel where torch is a CUDA build and a CUDA toolkit is found (MAMBA_STATE_EXT_CUDA=1 forces it,
=0 skips it). The library uses torch's stable ABI only (TORCH_TARGET_VERSION), so it loads under
every torch from build_flags.json's torch_target on, whichever torch it is built against; it has
no Python module in it, so one wheel (cp310-abi3) serves every Python from 3.10.

The version: VERSION for a build with the CUDA major of build_flags.json's default_cuda_major (and
for the sdist), VERSION+cuNN for another CUDA major, VERSION+cpu without CUDA: the variants a
package index cannot tell apart go to separate indexes, as torch's do.
"""

import importlib.util
import sys
from pathlib import Path

import torch
from setuptools import Extension, setup

ROOT = Path(__file__).resolve().parent
VERSION = "0.1.0"


def load_build_config():
    # By path: importing the package itself would try to load the library being built.
    spec = importlib.util.spec_from_file_location(
        "mamba_state_ext_build_config", ROOT / "mamba_state_ext" / "build_config.py"
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


build_config = load_build_config()
with_cuda = build_config.configure_cuda(torch.version.cuda)  # sets CUDA_HOME before the import

from torch.utils.cpp_extension import BuildExtension, include_paths, library_paths  # noqa: E402

device_type = "cuda" if with_cuda else "cpu"
compile_args = {"cxx": build_config.cxx_flags(with_cuda)}
variant = "cpu"
if with_cuda:
    cuda_home = build_config.find_cuda_home()
    compile_args["nvcc"] = build_config.nvcc_flags() + build_config.cuda_arch_flags(cuda_home)
    cuda_major = build_config.nvcc_version(cuda_home)[0]
    variant = None if cuda_major == build_config.DEFAULT_CUDA_MAJOR else f"cu{cuda_major}"
if "sdist" in sys.argv[1:]:  # the sources build every variant
    variant = None

setup(
    version=VERSION if variant is None else f"{VERSION}+{variant}",
    ext_modules=[
        Extension(
            "mamba_state_ext._C",
            sources=build_config.sources(with_cuda=with_cuda, relative_to=ROOT),
            include_dirs=include_paths(device_type=device_type),
            library_dirs=library_paths(device_type=device_type),
            libraries=build_config.libraries(with_cuda),
            extra_compile_args=compile_args,
            extra_link_args=build_config.link_flags(with_cuda),
            py_limited_api=True,
            language="c++",
        )
    ],
    cmdclass={"build_ext": BuildExtension},
    options={"bdist_wheel": {"py_limited_api": "cp310"}},
)
