// The CUDA kernel's grid, run block by block and thread by thread on CPU tensors, with the
// kernel's barriers kept (each step runs for every thread of a block before the next step): the
// tests' window into the CUDA index arithmetic on machines without a GPU. A test-only library
// (tests/grid_library.py builds it, with mamba_state_ext/csrc/ on the include path): its operators
// mamba_state_grid::update and ::copy_slots have the schemas of mamba_state's; set_max_blocks sets
// the grid's size for the calls that follow, and last_launches describes the last call's launches,
// as JSON.
#include <torch/csrc/stable/library.h>

#include <algorithm>
#include <array>
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
    case TilePath::kQuantize: return "quantize";
    case TilePath::kQuantizeGroups: return "quantize_groups";
  }
  return "?";
}

// What combine_lanes does on the GPU to each aligned group of `width` lanes of a warp's values:
// the same exchanges, all lanes at once.
void combine_lanes(float* lanes, int width) {
  for (int offset = width / 2; offset > 0; offset /= 2) {
    float exchanged[kWarpSize];
    for (int lane = 0; lane < kWarpSize; ++lane) {
      exchanged[lane] = max_magnitude(lanes[lane], lanes[lane ^ offset]);
    }
    std::copy(exchanged, exchanged + kWarpSize, lanes);
  }
}

using Maxima = std::vector<std::array<float, kUnitsPerThread>>;  // [thread][unit]

// What combine_group_maxima does on the GPU, for a block's threads at once: each warp's lanes,
// then the (unit, warp) pairs as the first warp's lanes.
void combine_group_maxima(Maxima& maxima, int group_units) {
  for (int warp = 0; warp < kWarpsPerBlock; ++warp) {
    for (int j = 0; j < kUnitsPerThread; ++j) {
      float lanes[kWarpSize];
      for (int lane = 0; lane < kWarpSize; ++lane) lanes[lane] = maxima[warp * kWarpSize + lane][j];
      combine_lanes(lanes, std::min(group_units, kWarpSize));
      for (int lane = 0; lane < kWarpSize; ++lane) maxima[warp * kWarpSize + lane][j] = lanes[lane];
    }
  }
  if (group_units <= kWarpSize) return;
  float pairs[kWarpSize];
  for (int j = 0; j < kUnitsPerThread; ++j) {
    for (int warp = 0; warp < kWarpsPerBlock; ++warp) {
      pairs[j * kWarpsPerBlock + warp] = maxima[warp * kWarpSize][j];
    }
  }
  const int pairs_per_group = group_units / kWarpSize;
  combine_lanes(pairs, pairs_per_group);
  for (int thread = 0; thread < kThreadsPerBlock; ++thread) {
    for (int j = 0; j < kUnitsPerThread; ++j) {
      const int group = (j * kThreadsPerBlock + thread) / group_units;
      maxima[thread][j] = pairs[group * pairs_per_group];
    }
  }
}

// A block of a kind quantized on commit, its threads taking each step together, as the CUDA
// kernel's quantize_kind_tiles and quantize_kind_groups do.
void quantize_block(const KernelParams& params, const ResolvedCopy* copies, int64_t num_copies,
                    int64_t block) {
  const int k = kind_of_block(params, block);
  const TiledStateCopy& state = params.states[k];
  const QuantizedCopy& quantized = params.quantized[state.copy.quantized];
  const int64_t kind_blocks = params.first_block[k + 1] - params.first_block[k];
  visit_quantization(quantized.source, quantized.format, [&](auto types) {
    using Types = decltype(types);
    using Src = typename Types::Source;
    for (int64_t t = block - params.first_block[k]; t < num_tiles(state, num_copies);
         t += kind_blocks) {
      if (state.path == TilePath::kQuantize) {
        const TilePlace place = place_of_tile(state, copies, t);
        std::vector<std::array<SourceUnit<Src>, kUnitsPerThread>> units(kThreadsPerBlock);
        Maxima maxima(kThreadsPerBlock);
        for (int thread = 0; thread < kThreadsPerBlock; ++thread) {
          load_quantize_units<Src>(state, state.copy.src_state(place.layer, place.target),
                                   place.tile, thread, units[thread].data(), maxima[thread].data());
        }
        combine_group_maxima(maxima, state.group_units);
        for (int thread = 0; thread < kThreadsPerBlock; ++thread) {
          store_quantize_units<Src, Types::format>(
              state, quantized, state.copy.dst_state(place.layer, place.target.slot),
              quantized.slot_scales(place.layer, place.target.slot), place.tile, thread,
              units[thread].data(), maxima[thread].data());
        }
        continue;
      }
      for (int warp = 0; warp < kWarpsPerBlock; ++warp) {
        GroupPlace group;
        if (!place_of_group(state, quantized, copies, t, warp, &group)) continue;
        float lanes[kWarpSize];
        for (int lane = 0; lane < kWarpSize; ++lane) {
          lanes[lane] = lane_group_amax<Src>(state.copy.layout, group.src, lane);
        }
        combine_lanes(lanes, kWarpSize);
        const float scale = lanes[0] / quantized.qmax;
        for (int lane = 0; lane < kWarpSize; ++lane) {
          lane_group_store<Src, Types::format>(state.copy.layout, group.dst, group.src, lane, scale,
                                               quantized.qmax);
        }
        *group.scale = scale;
      }
    }
  });
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
      const int64_t num_copies = static_cast<int64_t>(copies.size());
      const bool quantizes = params.num_states > 0 &&
                             block < params.first_block[params.num_states] &&
                             params.states[kind_of_block(params, block)].copy.quantized >= 0;
      if (quantizes) {
        quantize_block(params, copies.data(), num_copies, block);
        continue;
      }
      for (int thread = 0; thread < kThreadsPerBlock; ++thread) {
        copy_block_tiles(params, copies.data(), num_copies, block, thread);
      }
    }
    description << (l ? ", " : "") << "{\"blocks\": " << launches[l].num_blocks
                << ", \"states\": [";
    for (int k = 0; k < params.num_states; ++k) {
      const TiledStateCopy& state = params.states[k];
      description << (k ? ", " : "") << "{\"path\": \"" << path_name(state.path)
                  << "\", \"unit_elements\": " << state.unit_elements
                  << ", \"group_units\": " << state.group_units
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
