"""SGLang's own Mamba state kernels, the benchmark's `sglang` method: from the installed
``sglang`` package, or (``--sglang PATH``) from a wheel of SGLang or a folder of files extracted
from one, whose kernel files are loaded by path under stub parent packages, so that SGLang's
package ``__init__`` (and its heavy imports) never runs. Nothing of SGLang's is changed or kept in
this repository.
"""

from __future__ import annotations

import contextlib
import importlib
import importlib.util
import os
import re
import sys
import types
import zipfile
from pathlib import Path

from mamba_state_ext.integrations.sglang import SGLANG_RELEASES, SGLANG_SCATTER_MODULE

PTR_TABLE_MODULE = "sglang.kernels.ops.memory.ptr_table"
KERNEL_MODULES = (SGLANG_SCATTER_MODULE, PTR_TABLE_MODULE)
# The parent packages the two kernel files import from, stubbed when they come from a wheel.
STUB_PACKAGES = (
    "sglang",
    "sglang.kernels",
    "sglang.kernels.ops",
    "sglang.kernels.ops.memory",
    "sglang.srt",
    "sglang.srt.utils",
    "sglang.srt.utils.common",
)


def member_path(module: str) -> str:
    return module.replace(".", "/") + ".py"


def extract(wheel: Path, members: list[str], root: Path | None = None) -> Path:
    """The members, unpacked (unchanged) into root, by default a folder beside the wheel named
    after it; returns the folder."""
    root = root or wheel.parent / wheel.name.removesuffix(".whl")
    with zipfile.ZipFile(wheel) as archive:
        for member in members:
            target = root / member
            data = archive.read(member)
            if not target.is_file() or target.read_bytes() != data:
                target.parent.mkdir(parents=True, exist_ok=True)
                target.write_bytes(data)
    return root


def files_of(source: Path, modules) -> Path:
    """The folder that holds the modules' files: a wheel's, extracted beside it, or the folder
    given (files extracted from a wheel before, as scripts/prepare_gpu_check.sh does)."""
    members = [member_path(module) for module in modules]
    if source.is_dir():
        missing = [member for member in members if not (source / member).is_file()]
        if missing:
            raise ImportError(f"{source} lacks {', '.join(missing)}")
        return source
    if not source.is_file():
        raise ImportError(f"no wheel or folder at {source}")
    return extract(source, members)


def load_file(name: str, path: Path) -> types.ModuleType:
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


@contextlib.contextmanager
def stub_packages(names):
    """Empty modules for SGLang's parent packages, removed again afterwards."""
    saved = {name: sys.modules.get(name) for name in names}
    for name in names:
        sys.modules[name] = types.ModuleType(name)
    try:
        yield
    finally:
        for name, module in saved.items():
            if module is None:
                sys.modules.pop(name, None)
            else:
                sys.modules[name] = module


def _device_core_count(device_index: int = 0) -> int:
    """sglang.srt.utils.common.get_device_core_count, which the kernels size their grid by."""
    import torch

    if torch.cuda.is_available():
        return torch.cuda.get_device_properties(device_index).multi_processor_count
    return 0


def load_scatter(source: str | os.PathLike | None = None) -> types.ModuleType:
    """SGLang's ``mamba_state_scatter_triton`` module: from the wheel or folder when one is given,
    else the installed package's (ImportError when neither is there)."""
    if source is None:
        try:
            return importlib.import_module(SGLANG_SCATTER_MODULE)
        except ImportError as error:
            raise ImportError(
                f"sglang is not installed ({error}): pip install sglang=={SGLANG_RELEASES[-1]}, "
                "or pass its wheel"
            ) from error
    source = Path(source)
    root = files_of(source, KERNEL_MODULES)
    with stub_packages(STUB_PACKAGES + (PTR_TABLE_MODULE,)):
        sys.modules["sglang.srt.utils.common"].get_device_core_count = _device_core_count
        load_file(PTR_TABLE_MODULE, root / member_path(PTR_TABLE_MODULE))
        # One module per source: two releases' kernels may be loaded side by side.
        tag = re.sub(r"\W", "_", source.name.removesuffix(".whl"))
        return load_file(
            f"mamba_state_ext_sglang_scatter_{tag}", root / member_path(SGLANG_SCATTER_MODULE)
        )
