"""mamba_state_ext: commit the accepted speculative-decoding step of every request's recurrent
states (SSM and conv, every linear-attention layer) into the state pool, in one operator call.

Importing the package makes ``torch.ops.mamba_state.update`` and ``.copy_slots`` exist (the
compiled library, or the same schemas over a pure-PyTorch fallback); ``backend()`` says which and
why.
"""

from . import _loader, reference
from ._loader import Backend
from .commit import commit_verified_states
from .ops import copy_slots, update

_loader.load()


def backend() -> Backend:
    """What serves ``torch.ops.mamba_state.update`` in this process, with the library's build
    facts (torch version, CUDA version, architectures) and the reason for the choice."""
    return _loader.current()


__all__ = ["Backend", "backend", "commit_verified_states", "copy_slots", "reference", "update"]
