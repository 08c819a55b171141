// mamba_state_ext._C: importing it loads the operator library (the registrations run at load).
// Built only by setup.py; the CMake and JIT libraries are loaded with torch.ops.load_library.
#include <torch/extension.h>

#include "cuda/kernel_params.h"
#include "update_plan.h"

extern "C" const char* mamba_state_build_info();

namespace {

// The CUDA kernel's grid, run block by block and thread by thread on CPU tensors: the tests'
// window into the CUDA index arithmetic on machines without a GPU. Same arguments and checks as
// the operator; returns each launch's block count and each state kind's unit and tile counts.
pybind11::list run_cuda_grid_on_cpu(std::vector<at::Tensor> states,
                                    std::vector<at::Tensor> intermediates,
                                    const at::Tensor& dst_slots, const at::Tensor& steps,
                                    const std::optional<at::Tensor>& src_rows,
                                    int64_t step_offset,
                                    const std::optional<at::Tensor>& entry_status) {
  TORCH_CHECK(!states.empty() && states[0].device().is_cpu(),
              "_run_cuda_grid_on_cpu takes CPU tensors");
  const mamba_state::UpdatePlan plan = mamba_state::plan_update(
      states, intermediates, dst_slots, steps, src_rows, step_offset, entry_status);
  pybind11::list launches;
  for (const mamba_state::KernelParams& params : mamba_state::make_kernel_params(plan)) {
    for (int64_t block = 0; block < params.num_blocks; ++block) {
      for (int thread = 0; thread < mamba_state::kThreadsPerBlock; ++thread) {
        mamba_state::run_block(params, block, thread);
      }
    }
    pybind11::list kinds;
    for (int k = 0; k < params.num_states; ++k) {
      const mamba_state::TiledStateCopy& state = params.states[k];
      kinds.append(pybind11::dict(pybind11::arg("unit_elements") = state.unit_elements,
                                  pybind11::arg("tiles_per_entry") = state.tiles_per_entry));
    }
    launches.append(pybind11::dict(pybind11::arg("blocks") = params.num_blocks,
                                   pybind11::arg("states") = kinds));
  }
  return launches;
}

}  // namespace

PYBIND11_MODULE(TORCH_EXTENSION_NAME, m) {
  m.def("build_info", [] { return std::string(mamba_state_build_info()); },
        "What the library was built against: 'torch=...;cuda=...;archs=...'.");
  m.def("_run_cuda_grid_on_cpu", &run_cuda_grid_on_cpu, pybind11::arg("states"),
        pybind11::arg("intermediates"), pybind11::arg("dst_slots"), pybind11::arg("steps"),
        pybind11::arg("src_rows") = pybind11::none(), pybind11::arg("step_offset") = 0,
        pybind11::arg("entry_status") = pybind11::none());
}
