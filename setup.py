"""Builds mamba_state_ext._C: the CPU kernel always, the CUDA kernel where torch is a CUDA build
and a CUDA toolkit is found (MAMBA_STATE_EXT_CUDA=1 forces it, =0 skips it). Build with
``pip install --no-build-isolation -e .`` so that the library is built against the installed torch.
"""

import importlib.util
from pathlib import Path

import torch
from setuptools import setup

ROOT = Path(__file__).resolve().parent


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

from torch.utils.cpp_extension import BuildExtension, CppExtension, CUDAExtension  # noqa: E402

extension_type = CUDAExtension if with_cuda else CppExtension
compile_args = {"cxx": build_config.cxx_flags(with_cuda)}
if with_cuda:
    arch_flags = build_config.cuda_arch_flags(build_config.find_cuda_home())
    compile_args["nvcc"] = build_config.nvcc_flags() + arch_flags

setup(
    ext_modules=[
        extension_type(
            "mamba_state_ext._C",
            sources=build_config.sources(ROOT, with_cuda=with_cuda, python_module=True),
            extra_compile_args=compile_args,
            extra_link_args=build_config.LINK_FLAGS,
        )
    ],
    cmdclass={"build_ext": BuildExtension},
)
