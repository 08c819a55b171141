// The mamba_state operators' definitions; the kernels register themselves beside their code
// (cpu/, cuda/), and the fake kernels that torch.compile runs are registered from Python
// (mamba_state_ext/checks.py), where symbolic shapes come for free. build_info takes no tensor:
// its one kernel serves every backend.
#include "operators.h"

#include <torch/csrc/stable/library.h>

#include "build_info.h"

namespace mamba_state {

const OperatorNamespace& mamba_state_operators() {
  static const OperatorNamespace operators(
      "mamba_state", {kUpdateSchema, kCopySlotsSchema, kBuildInfoSchema}, __FILE__, __LINE__);
  return operators;
}

namespace {
const bool registered = mamba_state_operators().implement(
    "CompositeExplicitAutograd", {{"build_info", TORCH_BOX(&build_info)}}, __FILE__, __LINE__);
}  // namespace

}  // namespace mamba_state
