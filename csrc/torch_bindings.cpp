// The operators' schemas, declared once (mamba_state_ext/fallback.py registers the same strings
// when the library is missing; a test holds them equal). The CPU and CUDA kernels register
// themselves in cpu/ and cuda/; the fake (meta) kernels that torch.compile runs are registered
// from Python (mamba_state_ext/checks.py), where symbolic shapes come for free.
#include <torch/library.h>

TORCH_LIBRARY(mamba_state, m) {
  m.def(
      "update(Tensor(a!)[] states, Tensor[] intermediates, Tensor dst_slots, Tensor steps, "
      "Tensor? src_rows=None, int step_offset=0, Tensor(b!)? entry_status=None, "
      "Tensor? track_slots=None, Tensor? track_steps=None) -> ()");
  m.def(
      "copy_slots(Tensor(a!)[] states, Tensor src_slots, Tensor dst_slots, Tensor? mask=None, "
      "Tensor(b!)? entry_status=None) -> ()");
}
