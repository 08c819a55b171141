// Host side of the CUDA launch: the grid and the by-value kernel arguments for a plan. Plain C++,
// built into every library, because the CPU emulation of the grid (tests) uses it too.
#pragma once

#include <vector>

#include "../update_plan.h"
#include "update_kernel.h"

namespace mamba_state {

// One KernelParams per launch: a single launch for up to kMaxStatesPerLaunch state kinds, and a
// launch with num_blocks == 0 when there is nothing to do.
std::vector<KernelParams> make_kernel_params(const UpdatePlan& plan);

}  // namespace mamba_state
