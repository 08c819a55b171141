// The operator's schema, declared once. The CPU and CUDA kernels register themselves in cpu/ and
// cuda/; the fake (meta) kernel that torch.compile runs is registered from Python
// (mamba_state_ext/checks.py: fake_update), where symbolic shapes come for free.
#include <torch/library.h>

TORCH_LIBRARY(mamba_state, m) {
  m.def(
      "update(Tensor(a!)[] states, Tensor[] intermediates, Tensor dst_slots, Tensor steps, "
      "Tensor? src_rows=None, int step_offset=0, Tensor(b!)? entry_status=None) -> ()");
}
