// The CUDA kernel of mamba_state::update and mamba_state::copy_slots: one launch for every state
// kind, entry, layer and index set (up to kMaxStatesPerLaunch kinds), on the current stream, with
// no host sync and no allocation, so it can be captured in a CUDA graph. The kernel's steps are
// the __host__ __device__ functions of update_kernel.h.
#include <c10/cuda/CUDAException.h>
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>
#include <torch/library.h>

#include <mutex>
#include <vector>

#include "kernel_params.h"
#include "update_kernel.h"

#define MAMBA_STATE_STRINGIFY_(...) #__VA_ARGS__
#define MAMBA_STATE_STRINGIFY(...) MAMBA_STATE_STRINGIFY_(__VA_ARGS__)

namespace mamba_state {
namespace {

constexpr int kWarpSize = 32;
constexpr int kWarpsPerBlock = kThreadsPerBlock / kWarpSize;

// The exclusive prefix sum of `value` over the block's threads, in thread order; *total gets the
// sum. Ends with a barrier, so that the caller may reuse what it wrote before.
__device__ int block_exclusive_sum(int value, int* total) {
  __shared__ int warp_sums[kWarpsPerBlock];
  const int lane = threadIdx.x % kWarpSize;
  const int warp = threadIdx.x / kWarpSize;
  int inclusive = value;
#pragma unroll
  for (int shift = 1; shift < kWarpSize; shift *= 2) {
    const int before = __shfl_up_sync(0xffffffffu, inclusive, shift);
    if (lane >= shift) inclusive += before;
  }
  if (lane == kWarpSize - 1) warp_sums[warp] = inclusive;
  __syncthreads();
  int warp_offset = 0;
  int sum = 0;
#pragma unroll
  for (int w = 0; w < kWarpsPerBlock; ++w) {
    warp_offset += w < warp ? warp_sums[w] : 0;
    sum += warp_sums[w];
  }
  *total = sum;
  __syncthreads();
  return warp_offset + inclusive - value;
}

// __grid_constant__: the steps read the arguments in place, without a local copy.
__global__ void __launch_bounds__(kThreadsPerBlock, kMinBlocksPerMultiprocessor)
    update_kernel(const __grid_constant__ KernelParams params) {
  __shared__ LiveTask live[kMaxTasks];
  const int thread = static_cast<int>(threadIdx.x);
  if (blockIdx.x == 0 && params.entry_status != nullptr) write_entry_status(params, thread);
  // Fixed indices into mine and copies (the loops unroll), so that they stay in registers.
  LiveTask mine[kTasksPerThread];
  bool copies[kTasksPerThread];
  int count = 0;
#pragma unroll
  for (int j = 0; j < kTasksPerThread; ++j) {
    copies[j] = resolve_task(params, thread * kTasksPerThread + j, &mine[j]);
    count += copies[j];
  }
  int num_live;
  int position = block_exclusive_sum(count, &num_live);
#pragma unroll
  for (int j = 0; j < kTasksPerThread; ++j) {
    if (copies[j]) live[position++] = mine[j];
  }
  __syncthreads();
  copy_block_tiles(params, live, num_live, blockIdx.x, thread);
}

// Blocks of update_kernel that fit on the device at once, read once per device.
int64_t resident_blocks(int device) {
  static std::mutex mutex;
  static std::vector<int64_t> blocks;
  const std::lock_guard<std::mutex> lock(mutex);
  if (blocks.size() <= static_cast<size_t>(device)) blocks.resize(device + 1, 0);
  if (blocks[device] == 0) {
    int multiprocessors = 0;
    int per_multiprocessor = 0;
    C10_CUDA_CHECK(
        cudaDeviceGetAttribute(&multiprocessors, cudaDevAttrMultiProcessorCount, device));
    C10_CUDA_CHECK(cudaOccupancyMaxActiveBlocksPerMultiprocessor(
        &per_multiprocessor, update_kernel, kThreadsPerBlock, 0));
    blocks[device] = static_cast<int64_t>(multiprocessors) * std::max(per_multiprocessor, 1);
  }
  return blocks[device];
}

void launch(const UpdatePlan& plan, const at::Tensor& on) {
  const c10::cuda::CUDAGuard device_guard(on.device());
  const cudaStream_t stream = c10::cuda::getCurrentCUDAStream();
  for (const Launch& launch : make_launches(plan, resident_blocks(on.get_device()))) {
    if (launch.num_blocks == 0) continue;
    update_kernel<<<static_cast<unsigned int>(launch.num_blocks), kThreadsPerBlock, 0, stream>>>(
        launch.params);
    C10_CUDA_KERNEL_LAUNCH_CHECK();
  }
}

void update_cuda(at::TensorList states, at::TensorList intermediates, const at::Tensor& dst_slots,
                 const at::Tensor& steps, const std::optional<at::Tensor>& src_rows,
                 int64_t step_offset, const std::optional<at::Tensor>& entry_status,
                 const std::optional<at::Tensor>& track_slots,
                 const std::optional<at::Tensor>& track_steps) {
  launch(plan_update(states, intermediates, dst_slots, steps, src_rows, step_offset, entry_status,
                     track_slots, track_steps),
         states[0]);
}

void copy_slots_cuda(at::TensorList states, const at::Tensor& src_slots,
                     const at::Tensor& dst_slots, const std::optional<at::Tensor>& mask,
                     const std::optional<at::Tensor>& entry_status) {
  launch(plan_copy_slots(states, src_slots, dst_slots, mask, entry_status), states[0]);
}

}  // namespace

// The CUDA runtime and the architectures (nvcc's __CUDA_ARCH_LIST__) this file was compiled for.
const char* cuda_build_info() {
  return "cuda=" MAMBA_STATE_STRINGIFY(CUDART_VERSION) ";archs=" MAMBA_STATE_STRINGIFY(
      __CUDA_ARCH_LIST__);
}

TORCH_LIBRARY_IMPL(mamba_state, CUDA, m) {
  m.impl("update", &update_cuda);
  m.impl("copy_slots", &copy_slots_cuda);
}

}  // namespace mamba_state
