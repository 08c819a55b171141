"""How much faster than what a server does now, on real shapes: ``python -m mamba_state_ext.bench``.

Every method commits the same entries into the same pools (all entries applied, distinct slots),
is first checked bit for bit against a direct gather, then timed: warm-up, then the median of
many calls, rotating among index sets that together touch at least four times the last-level
cache, so that repeats are not served from it. On the CPU a call's time is its wall time. On the
GPU it is its device time (CUDA events, with the call queued behind a sleep kernel so that the
host's issue time stays out), and ``host_us`` is the host's time until the call returns: a Python
loop or a Triton launcher can cost more there than on the GPU (and ``loop`` and ``vectorized``,
which read indices to the host, wait there for the GPU, the sleep included). Effective GB/s
counts the bytes each call must read and write (intermediates read once, pools written once) over
the median time. ``copy``
is a plain ``copy_`` of as many bytes: the roofline. A result's ``extra_mib`` is the peak memory
one call allocates (CUDA only; None on the CPU).

The package: ``presets`` (the shapes), ``workload`` (pools, caches and index sets of one size),
``methods`` (what is timed), ``timing``, ``report`` (table, targets, plot) and ``cli``.
"""

from .cli import main
from .methods import METHODS, load_sglang
from .presets import DEFAULT_N, MIB, PRESETS, QUICK_N, Preset, StateKind
from .workload import Skip, Workload

__all__ = [
    "DEFAULT_N",
    "METHODS",
    "MIB",
    "PRESETS",
    "QUICK_N",
    "Preset",
    "Skip",
    "StateKind",
    "Workload",
    "load_sglang",
    "main",
]
