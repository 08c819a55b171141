// The CUDA kernel's grid, run block by block and thread by thread on CPU tensors, with the
// kernel's barriers kept (each step runs for every thread of a block before the next step): the
// tests' window into the CUDA index arithmetic on machines without a GPU. A test-only library
// (tests/grid_library.py builds it, with mamba_state_ext/csrc/ on the include path): its operators
// mamba_state_grid::update and ::copy_slots have the schemas of mamba_state's; set_max_blocks sets
// the grid's size for the calls that follow, and last_launches describes the last call's launches,
// as JSON.
#include <torch/csrc/stable/library.h>

#include <sstream>
#include <string>
#include <vector>

#include "call.h"
#include "grid/grid.h"
#include "grid/launch_plan.h"
#include "operators.h"
#include "plan.h"

namespace mamba_state {
namespace {

int64_t max_blocks = 7;  // fewer blocks than tiles, so that blocks stride over tiles
std::string last_launches = "[]";

const char* path_name(TilePath path) {
  switch (path) {
    case TilePath::kOneDim: return "one_dim";
    case TilePath::kRows: return "rows";
    case TilePath::kStrided: return "strided";
  }
  return "?";
}

void run_grid(const CopyPlan& plan, const TensorMeta& on) {
  require(on.device_type == aoti_torch_device_type_cpu(),
          "the CPU run of the CUDA grid takes CPU tensors");
  std::ostringstream description;
  description << "[";
  const Launches launches = make_launches(plan, max_blocks);
  for (size_t l = 0; l < launches.size(); ++l) {
    const KernelParams& params = launches[l].params;
    for (int64_t block = 0; block < launches[l].num_blocks; ++block) {
      if (block == 0 && params.entry_status != nullptr) {
        for (int thread = 0; thread < kThreadsPerBlock; ++thread) {
          write_entry_status(params, thread);
        }
      }
      std::vector<ResolvedCopy> copies;
      for (int thread = 0; thread < kThreadsPerBlock; ++thread) {
        for (int j = 0; j < kTasksPerThread; ++j) {
          ResolvedCopy copy;
          if (resolve_task(params, thread * kTasksPerThread + j, &copy)) copies.push_back(copy);
        }
      }
      for (int thread = 0; thread < kThreadsPerBlock; ++thread) {
        copy_block_tiles(params, copies.data(), static_cast<int64_t>(copies.size()), block, thread);
      }
    }
    description << (l ? ", " : "") << "{\"blocks\": " << launches[l].num_blocks
                << ", \"states\": [";
    for (int k = 0; k < params.num_states; ++k) {
      const TiledStateCopy& state = params.states[k];
      description << (k ? ", " : "") << "{\"path\": \"" << path_name(state.path)
                  << "\", \"unit_elements\": " << state.unit_elements
                  << ", \"tiles_per_state\": " << state.tiles_per_state
                  << ", \"blocks\": " << params.first_block[k + 1] - params.first_block[k] << "}";
    }
    description << "]}";
  }
  description << "]";
  last_launches = description.str();
}

void run_update(const UpdateCall& call) {
  run_grid(plan_update(call), call.states[0]);
}

void run_copy_slots(const CopySlotsCall& call) {
  run_grid(plan_copy_slots(call), call.states[0]);
}

void set_max_blocks(int64_t blocks) {
  require(blocks > 0, "max_blocks must be positive");
  max_blocks = blocks;
}

std::string describe_last_launches() {
  return last_launches;
}

const OperatorNamespace grid_operators("mamba_state_grid",
                                       {kUpdateSchema, kCopySlotsSchema,
                                        "set_max_blocks(int blocks) -> ()",
                                        "last_launches() -> str"},
                                       __FILE__, __LINE__);
const bool registered =
    grid_operators.implement("CPU",
                             {{"update", TORCH_BOX(&update_entry<run_update>)},
                              {"copy_slots", TORCH_BOX(&copy_slots_entry<run_copy_slots>)}},
                             __FILE__, __LINE__) &&
    grid_operators.implement("CompositeExplicitAutograd",
                             {{"set_max_blocks", TORCH_BOX(&set_max_blocks)},
                              {"last_launches", TORCH_BOX(&describe_last_launches)}},
                             __FILE__, __LINE__);

}  // namespace
}  // namespace mamba_state
