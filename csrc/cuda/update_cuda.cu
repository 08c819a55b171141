// The CUDA kernel of mamba_state::update: one launch for every state kind, entry and layer (up to
// kMaxStatesPerLaunch kinds), on the current stream, with no host sync and no allocation, so it
// can be captured in a CUDA graph. The kernel body is run_block (update_kernel.h).
#include <c10/cuda/CUDAException.h>
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>
#include <torch/library.h>

#include "kernel_params.h"
#include "update_kernel.h"

#define MAMBA_STATE_STRINGIFY_(...) #__VA_ARGS__
#define MAMBA_STATE_STRINGIFY(...) MAMBA_STATE_STRINGIFY_(__VA_ARGS__)

namespace mamba_state {
namespace {

// __grid_constant__: run_block reads the arguments in place, without a local copy.
__global__ void __launch_bounds__(kThreadsPerBlock)
    update_kernel(const __grid_constant__ KernelParams params) {
  run_block(params, blockIdx.x, static_cast<int>(threadIdx.x));
}

void update_cuda(at::TensorList states, at::TensorList intermediates, const at::Tensor& dst_slots,
                 const at::Tensor& steps, const std::optional<at::Tensor>& src_rows,
                 int64_t step_offset, const std::optional<at::Tensor>& entry_status) {
  const UpdatePlan plan =
      plan_update(states, intermediates, dst_slots, steps, src_rows, step_offset, entry_status);
  const c10::cuda::CUDAGuard device_guard(states[0].device());
  const cudaStream_t stream = c10::cuda::getCurrentCUDAStream();
  for (const KernelParams& params : make_kernel_params(plan)) {
    if (params.num_blocks == 0) continue;
    update_kernel<<<static_cast<unsigned int>(params.num_blocks), kThreadsPerBlock, 0, stream>>>(
        params);
    C10_CUDA_KERNEL_LAUNCH_CHECK();
  }
}

}  // namespace

// The CUDA runtime and the architectures (nvcc's __CUDA_ARCH_LIST__) this file was compiled for.
const char* cuda_build_info() {
  return "cuda=" MAMBA_STATE_STRINGIFY(CUDART_VERSION) ";archs=" MAMBA_STATE_STRINGIFY(
      __CUDA_ARCH_LIST__);
}

TORCH_LIBRARY_IMPL(mamba_state, CUDA, m) { m.impl("update", &update_cuda); }

}  // namespace mamba_state
