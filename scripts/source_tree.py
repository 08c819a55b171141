"""This source tree's build_config.py, loaded by path for the scripts beside this file. Importing
the package would load its compiled library: a fresh checkout has none (an ImportError under
MAMBA_STATE_EXT_BACKEND=compiled), and a variant built in the process could not load beside it."""

from __future__ import annotations

import importlib.util
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def _load_build_config():
    path = ROOT / "mamba_state_ext" / "build_config.py"
    spec = importlib.util.spec_from_file_location("mamba_state_ext_build_config", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


build_config = _load_build_config()
