// The operators' schemas, declared once (mamba_state_ext/fallback.py registers the same strings
// for update and copy_slots when the library is missing; a test holds them equal). The CPU and
// CUDA kernels register themselves in cpu/ and cuda/; the fake (meta) kernels that torch.compile
// runs are registered from Python (mamba_state_ext/checks.py), where symbolic shapes come for
// free. build_info takes no tensor, so its one kernel serves every backend.
#include <torch/library.h>

#include "build_info.h"

TORCH_LIBRARY(mamba_state, m) {
  m.def(
      "update(Tensor(a!)[] states, Tensor[] intermediates, Tensor dst_slots, Tensor steps, "
      "Tensor? src_rows=None, int step_offset=0, Tensor(b!)? entry_status=None, "
      "Tensor? track_slots=None, Tensor? track_steps=None) -> ()");
  m.def(
      "copy_slots(Tensor(a!)[] states, Tensor src_slots, Tensor dst_slots, Tensor? mask=None, "
      "Tensor(b!)? entry_status=None) -> ()");
  m.def("build_info() -> str", &mamba_state::build_info);
}
