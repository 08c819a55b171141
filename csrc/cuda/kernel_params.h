// Host side of the CUDA launch: the by-value kernel arguments for a plan. Plain C++, built into
// every library, because the test build's CPU run of the grid uses it too.
#pragma once

#include <vector>

#include "../update_plan.h"
#include "update_kernel.h"

namespace mamba_state {

struct Launch {
  KernelParams params;
  int64_t num_blocks;  // 0: nothing to do
};

// One launch per kMaxStatesPerLaunch state kinds and kMaxTasks tasks (one launch for any real
// call), each of at most max_blocks blocks (the persistent grid: as many as fit on the GPU at
// once).
std::vector<Launch> make_launches(const UpdatePlan& plan, int64_t max_blocks);

}  // namespace mamba_state
