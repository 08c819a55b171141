"""SGLang's plugin: the entry point ``mamba_state_ext`` in SGLang's group ``sglang.srt.plugins``.
With this package installed beside SGLang, SGLang's own ``load_plugins()``, which every process it
starts calls, hooks its Mamba state commit and track copies (TAKEN_OVER, in
``sglang.kernels.ops.mamba.mamba_state_scatter_triton``) so that CUDA tensors go to this
package's drop-ins (integrations/sglang.py), one launch of the compiled CUDA kernel each; any
other tensor goes to SGLang's own function. SGLang rebinds every module that imported a name.

It stays out, and logs why, unless the installed SGLang is one of the releases the drop-ins were
checked against (SGLANG_RELEASES) and the compiled CUDA kernel serves CUDA tensors here.
``MAMBA_STATE_EXT_SGLANG=0`` turns it off, as does an ``SGLANG_PLUGINS`` list without its name.
``MAMBA_STATE_EXT_CHECK=1`` makes the drop-ins check every call (integrations/sglang.py).
"""

from __future__ import annotations

import importlib.metadata
import inspect
import logging
import os

import mamba_state_ext

from . import sglang as drop_ins

ENV = "MAMBA_STATE_EXT_SGLANG"

# SGLang's functions taken over, each with how to reach, from its first parameter, the tensor
# whose device decides who runs it.
TAKEN_OVER = {
    "scatter_mamba_states_after_mtp_verify": lambda caches: caches.temporal,
    "track_mamba_states_all_layers": lambda pool: pool,
    "track_mamba_states_if_needed": lambda pool: pool,
    "fused_mamba_state_scatter_with_mask": lambda dst: dst,
    "fused_conv_window_scatter_with_mask": lambda dst: dst,
    "fused_conv_window_scatter_multi": lambda pairs: pairs[0][0],
}

logger = logging.getLogger(__name__)
_registered = False


def reason_to_stay_out(
    environment: dict, sglang_version: str | None, backend: mamba_state_ext.Backend
) -> str | None:
    """Why the plugin leaves SGLang's functions alone, or None. A value of ENV other than 0 or 1
    is a ValueError (SGLang's loader logs it, with its traceback, and goes on without the
    plugin)."""
    switch = environment.get(ENV, "1") or "1"
    if switch not in ("0", "1"):
        raise ValueError(f"{ENV} must be 0 or 1 (got {switch!r})")
    if switch == "0":
        return f"{ENV}=0"
    if sglang_version not in drop_ins.SGLANG_RELEASES:
        return (
            f"SGLang {sglang_version} is not one of the releases whose functions these were "
            f"checked against ({', '.join(drop_ins.SGLANG_RELEASES)})"
        )
    if backend.cuda != "compiled":
        return f"its compiled CUDA kernel does not serve CUDA tensors here ({backend})"
    return None


def around(name: str, ours):
    """SGLang's AROUND hook for its function `name`: ours for CUDA tensors, else SGLang's. The
    first argument may come by position or by its name (ours and SGLang's share the names)."""
    tensor_of = TAKEN_OVER[name]
    first_name = next(iter(inspect.signature(ours).parameters))

    def hook(original, *args, **kwargs):
        first = args[0] if args else kwargs.get(first_name)
        if first is not None and tensor_of(first).is_cuda:
            return ours(*args, **kwargs)
        return original(*args, **kwargs)

    hook.__name__ = hook.__qualname__ = f"mamba_state_ext_{name}"
    return hook


def register() -> None:
    """The entry point: called by SGLang's load_plugins(), once per process."""
    global _registered
    if _registered:
        return
    _registered = True
    try:
        version = importlib.metadata.version("sglang")
    except importlib.metadata.PackageNotFoundError:
        version = None
    why = reason_to_stay_out(os.environ, version, mamba_state_ext.backend())
    if why:
        logger.info("mamba_state_ext: SGLang's own Mamba state kernels stay: %s", why)
        return
    checked = drop_ins.checking()  # a bad value raises here, as SGLang starts, not at decode
    from sglang.srt.plugins.hook_registry import HookRegistry, HookType

    for name in TAKEN_OVER:
        HookRegistry.register(
            f"{drop_ins.SGLANG_SCATTER_MODULE}.{name}",
            around(name, getattr(drop_ins, name)),
            HookType.AROUND,
        )
    logger.info(
        "mamba_state_ext: SGLang %s's %s run on CUDA tensors on mamba_state_ext's CUDA kernel "
        "(%s)%s",
        version,
        ", ".join(TAKEN_OVER),
        mamba_state_ext.backend().library,
        f", every call checked ({drop_ins.CHECK_ENV}=1)" if checked else "",
    )
