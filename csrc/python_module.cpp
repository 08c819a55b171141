// mamba_state_ext._C: importing it loads the operator library (the registrations run at load).
// Built only by setup.py; the CMake and JIT libraries are loaded with torch.ops.load_library.
#include <torch/extension.h>

#include "cuda/kernel_params.h"
#include "update_plan.h"

namespace {

// The CUDA kernel's grid, run block by block and thread by thread on CPU tensors, with the
// kernel's barriers kept (each step runs for every thread of a block before the next step): the
// tests' window into the CUDA index arithmetic on machines without a GPU. Returns each launch's
// block count and each state kind's path, unit, tile and block counts.
pybind11::list run_grid_on_cpu(const mamba_state::UpdatePlan& plan, int64_t max_blocks) {
  using namespace mamba_state;
  TORCH_CHECK(max_blocks > 0, "max_blocks must be positive");
  pybind11::list launches;
  for (const Launch& launch : make_launches(plan, max_blocks)) {
    const KernelParams& params = launch.params;
    for (int64_t block = 0; block < launch.num_blocks; ++block) {
      if (block == 0 && params.entry_status != nullptr) {
        for (int thread = 0; thread < kThreadsPerBlock; ++thread) {
          write_entry_status(params, thread);
        }
      }
      std::vector<LiveTask> live;
      for (int thread = 0; thread < kThreadsPerBlock; ++thread) {
        for (int j = 0; j < kTasksPerThread; ++j) {
          LiveTask task;
          if (resolve_task(params, thread * kTasksPerThread + j, &task)) live.push_back(task);
        }
      }
      for (int thread = 0; thread < kThreadsPerBlock; ++thread) {
        copy_block_tiles(params, live.data(), static_cast<int64_t>(live.size()), block, thread);
      }
    }
    pybind11::list kinds;
    for (int k = 0; k < params.num_states; ++k) {
      const TiledStateCopy& state = params.states[k];
      const char* path = state.path == TilePath::kOneDim ? "one_dim"
                         : state.path == TilePath::kRows ? "rows"
                                                         : "strided";
      kinds.append(pybind11::dict(pybind11::arg("path") = path,
                                  pybind11::arg("unit_elements") = state.unit_elements,
                                  pybind11::arg("tiles_per_entry") = state.tiles_per_entry,
                                  pybind11::arg("blocks") =
                                      params.first_block[k + 1] - params.first_block[k]));
    }
    launches.append(pybind11::dict(pybind11::arg("blocks") = launch.num_blocks,
                                   pybind11::arg("states") = kinds));
  }
  return launches;
}

void require_cpu(at::TensorList states) {
  TORCH_CHECK(!states.empty() && states[0].device().is_cpu(),
              "the CPU run of the CUDA grid takes CPU tensors");
}

pybind11::list update_grid_on_cpu(std::vector<at::Tensor> states,
                                  std::vector<at::Tensor> intermediates,
                                  const at::Tensor& dst_slots, const at::Tensor& steps,
                                  const std::optional<at::Tensor>& src_rows, int64_t step_offset,
                                  const std::optional<at::Tensor>& entry_status,
                                  const std::optional<at::Tensor>& track_slots,
                                  const std::optional<at::Tensor>& track_steps,
                                  int64_t max_blocks) {
  require_cpu(states);
  return run_grid_on_cpu(mamba_state::plan_update(states, intermediates, dst_slots, steps,
                                                  src_rows, step_offset, entry_status,
                                                  track_slots, track_steps),
                         max_blocks);
}

pybind11::list copy_slots_grid_on_cpu(std::vector<at::Tensor> states, const at::Tensor& src_slots,
                                      const at::Tensor& dst_slots,
                                      const std::optional<at::Tensor>& mask,
                                      const std::optional<at::Tensor>& entry_status,
                                      int64_t max_blocks) {
  require_cpu(states);
  return run_grid_on_cpu(
      mamba_state::plan_copy_slots(states, src_slots, dst_slots, mask, entry_status), max_blocks);
}

}  // namespace

PYBIND11_MODULE(TORCH_EXTENSION_NAME, m) {
  namespace py = pybind11;
  // A grid of 7 blocks by default: fewer blocks than tiles, so that blocks stride over tiles.
  m.def("_run_update_grid_on_cpu", &update_grid_on_cpu, py::arg("states"),
        py::arg("intermediates"), py::arg("dst_slots"), py::arg("steps"),
        py::arg("src_rows") = py::none(), py::arg("step_offset") = 0,
        py::arg("entry_status") = py::none(), py::arg("track_slots") = py::none(),
        py::arg("track_steps") = py::none(), py::arg("max_blocks") = 7);
  m.def("_run_copy_slots_grid_on_cpu", &copy_slots_grid_on_cpu, py::arg("states"),
        py::arg("src_slots"), py::arg("dst_slots"), py::arg("mask") = py::none(),
        py::arg("entry_status") = py::none(), py::arg("max_blocks") = 7);
}
