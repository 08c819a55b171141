// Host side of the CUDA launch: the by-value kernel arguments for a plan. Plain C++, compiled into
// the CUDA library and into the tests' CPU run of the grid.
#pragma once

#include "../copy_plan.h"
#include "../inline_vector.h"
#include "grid.h"

namespace mamba_state {

struct Launch {
  KernelParams params;
  int64_t num_blocks;  // 0: nothing to do
};

using Launches = InlineVector<Launch, 2>;

// One launch per kMaxStatesPerLaunch state kinds (kMaxQuantizedPerLaunch of them quantized on
// commit) and kMaxTasks tasks (one launch for any real call), each of at most max_blocks blocks
// (the persistent grid: as many as fit on the GPU at once).
Launches make_launches(const CopyPlan& plan, int64_t max_blocks);

}  // namespace mamba_state
