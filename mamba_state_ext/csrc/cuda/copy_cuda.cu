// The CUDA kernel of both operators: one launch for every state kind, entry, layer and index set
// (up to kMaxStatesPerLaunch kinds, kMaxTasks tasks), on the current stream, with no host sync
// and no allocation, so it can be captured in a CUDA graph. Its steps are the __host__
// __device__ functions of grid/grid.h. The CUDA runtime is linked statically (its symbols kept
// out of the library's exports), so the library loads beside a torch of another CUDA major.
#include <cuda_runtime.h>
// aoti_torch_get_current_cuda_stream is declared for CUDA builds only.
#define USE_CUDA
#include <torch/csrc/inductor/aoti_torch/c/shim.h>
#include <torch/csrc/stable/accelerator.h>
#include <torch/csrc/stable/library.h>
#include <torch/headeronly/util/shim_utils.h>

#include <atomic>
#include <stdexcept>
#include <string>

#include "../call.h"
#include "../errors.h"
#include "../grid/grid.h"
#include "../grid/launch_plan.h"
#include "../operators.h"
#include "../plan.h"

#define MAMBA_STATE_STRINGIFY_(...) #__VA_ARGS__
#define MAMBA_STATE_STRINGIFY(...) MAMBA_STATE_STRINGIFY_(__VA_ARGS__)

namespace mamba_state {

#if MAMBA_STATE_BULK_COPY
// Tiles in flight per block in the bulk-copy variant, each in its own shared-memory buffer. The
// variant is for the sm_90 sweep (scripts/gpu_check.sh): a build of it for older architectures
// too takes the plain tile path there, its buffers requested but unused.
constexpr int kBulkStages = 4;
constexpr uint32_t kBulkTileBytes = kUnitsPerTile * kVectorBytes;
constexpr size_t kDynamicSharedBytes = kBulkStages * kBulkTileBytes;

#if !defined(__CUDA_ARCH__) || __CUDA_ARCH__ >= 900
__device__ inline uint32_t shared_address(const void* pointer) {
  return static_cast<uint32_t>(__cvta_generic_to_shared(pointer));
}

// One thread moves the block's tiles: bulk loads of up to kBulkStages tiles into shared memory,
// each completing on its mbarrier, and a bulk store of each tile as it lands.
__device__ void copy_kind_bulk(const TiledStateCopy& state, const ResolvedCopy* copies,
                               int64_t num_copies, int64_t block, int64_t num_blocks, int thread) {
  extern __shared__ __align__(128) unsigned char buffers[];
  __shared__ __align__(8) uint64_t landed[kBulkStages];
  if (thread != 0) return;
  const int64_t entry_bytes = state.units_per_state * kVectorBytes;
  const int64_t num_tiles = num_copies * state.copy.num_layers * state.tiles_per_state;
  const int64_t count = num_tiles > block ? (num_tiles - block + num_blocks - 1) / num_blocks : 0;
  // Tile i of this block: its source, destination and bytes.
  auto locate = [&](int64_t i, const char** src, char** dst) -> uint32_t {
    int64_t copy_layer;
    int64_t tile;
    divide(block + i * num_blocks, state.tiles_per_state, &copy_layer, &tile);
    int64_t which;
    int64_t layer;
    divide(copy_layer, state.copy.num_layers, &which, &layer);
    const int64_t offset = tile * kBulkTileBytes;
    *src = state.copy.src_state(layer, copies[which]) + offset;
    *dst = state.copy.dst_state(layer, copies[which].slot) + offset;
    return static_cast<uint32_t>(min(static_cast<int64_t>(kBulkTileBytes), entry_bytes - offset));
  };
  auto load = [&](int64_t i) {
    const int stage = static_cast<int>(i % kBulkStages);
    const char* src;
    char* dst;
    const uint32_t bytes = locate(i, &src, &dst);
    asm volatile("mbarrier.arrive.expect_tx.shared::cta.b64 _, [%0], %1;" ::"r"(
                     shared_address(&landed[stage])),
                 "r"(bytes)
                 : "memory");
    asm volatile(
        "cp.async.bulk.shared::cluster.global.mbarrier::complete_tx::bytes [%0], [%1], %2, "
        "[%3];" ::"r"(shared_address(buffers + stage * kBulkTileBytes)),
        "l"(src), "r"(bytes), "r"(shared_address(&landed[stage]))
        : "memory");
  };
  for (int stage = 0; stage < kBulkStages; ++stage) {
    asm volatile("mbarrier.init.shared::cta.b64 [%0], 1;" ::"r"(shared_address(&landed[stage]))
                 : "memory");
  }
  asm volatile("fence.mbarrier_init.release.cluster;" ::: "memory");
  for (int64_t i = 0; i < count && i < kBulkStages; ++i) load(i);
  for (int64_t i = 0; i < count; ++i) {
    const int stage = static_cast<int>(i % kBulkStages);
    const uint32_t phase = static_cast<uint32_t>((i / kBulkStages) & 1);
    asm volatile(
        "{\n"
        ".reg .pred done;\n"
        "WAIT_%=:\n"
        "mbarrier.try_wait.parity.shared::cta.b64 done, [%0], %1;\n"
        "@!done bra WAIT_%=;\n"
        "}" ::"r"(shared_address(&landed[stage])),
        "r"(phase)
        : "memory");
    const char* src;
    char* dst;
    const uint32_t bytes = locate(i, &src, &dst);
    asm volatile("cp.async.bulk.global.shared::cta.bulk_group [%0], [%1], %2;" ::"l"(dst),
                 "r"(shared_address(buffers + stage * kBulkTileBytes)), "r"(bytes)
                 : "memory");
    asm volatile("cp.async.bulk.commit_group;" ::: "memory");
    if (i + kBulkStages < count) {
      // The buffer's next tile may land only once this store has read it.
      asm volatile("cp.async.bulk.wait_group.read 0;" ::: "memory");
      load(i + kBulkStages);
    }
  }
  asm volatile("cp.async.bulk.wait_group 0;" ::: "memory");
}
#endif  // !defined(__CUDA_ARCH__) || __CUDA_ARCH__ >= 900
#else
constexpr size_t kDynamicSharedBytes = 0;
#endif

// The max magnitude over aligned groups of `lanes` lanes of a warp (a power of two up to 32), in
// every lane of the group.
__device__ __forceinline__ float combine_lanes(float value, int lanes) {
  for (int offset = lanes / 2; offset > 0; offset /= 2) {
    value = max_magnitude(value, __shfl_xor_sync(0xffffffffu, value, offset));
  }
  return value;
}

// kQuantize: each of a thread's units gets its group's amax in place of its own max magnitude. A
// group narrower than a warp is combined over its lanes; a wider one over its warps' (unit,
// warp) pairs, which the first warp combines through shared memory (kQuantizeTilesFit: one lane
// per pair).
__device__ __forceinline__ void combine_group_maxima(float* maxima, int group_units, int thread) {
  __shared__ float pair_maxima[kUnitsPerThread * kWarpsPerBlock];
  __shared__ float tile_group_maxima[kUnitsPerTile / (2 * kWarpSize)];  // groups wider than a warp
  const int lane = thread % kWarpSize;
  const int warp = thread / kWarpSize;
  MAMBA_STATE_UNROLL
  for (int j = 0; j < kUnitsPerThread; ++j) {
    maxima[j] = combine_lanes(maxima[j], group_units < kWarpSize ? group_units : kWarpSize);
  }
  if (group_units <= kWarpSize) return;
  if (lane == 0) {
    MAMBA_STATE_UNROLL
    for (int j = 0; j < kUnitsPerThread; ++j) pair_maxima[j * kWarpsPerBlock + warp] = maxima[j];
  }
  __syncthreads();
  const int pairs_per_group = group_units / kWarpSize;
  if (warp == 0) {
    const float group = combine_lanes(pair_maxima[lane], pairs_per_group);
    if (lane % pairs_per_group == 0) tile_group_maxima[lane / pairs_per_group] = group;
  }
  __syncthreads();
  MAMBA_STATE_UNROLL
  for (int j = 0; j < kUnitsPerThread; ++j) {
    maxima[j] = tile_group_maxima[(j * kThreadsPerBlock + thread) / group_units];
  }
}

template <typename Src, QuantizedFormat kFormat>
__device__ __forceinline__ void quantize_kind_tiles(const TiledStateCopy& state,
                                                    const QuantizedCopy& quantized,
                                                    const ResolvedCopy* copies, int64_t num_copies,
                                                    int64_t block, int64_t num_blocks, int thread) {
  if constexpr (kQuantizeTilesFit) {
    MAMBA_STATE_NO_UNROLL
    for (int64_t t = block; t < num_tiles(state, num_copies); t += num_blocks) {
      const TilePlace place = place_of_tile(state, copies, t);
      SourceUnit<Src> units[kUnitsPerThread];
      float maxima[kUnitsPerThread];
      load_quantize_units<Src>(state, state.copy.src_state(place.layer, place.target), place.tile,
                               thread, units, maxima);
      combine_group_maxima(maxima, state.group_units, thread);
      store_quantize_units<Src, kFormat>(
          state, quantized, state.copy.dst_state(place.layer, place.target.slot),
          quantized.slot_scales(place.layer, place.target.slot), place.tile, thread, units, maxima);
    }
  }
}

template <typename Src, QuantizedFormat kFormat>
__device__ __forceinline__ void quantize_kind_groups(const TiledStateCopy& state,
                                                     const QuantizedCopy& quantized,
                                                     const ResolvedCopy* copies, int64_t num_copies,
                                                     int64_t block, int64_t num_blocks,
                                                     int thread) {
  const int lane = thread % kWarpSize;
  const int warp = thread / kWarpSize;
  MAMBA_STATE_NO_UNROLL
  for (int64_t t = block; t < num_tiles(state, num_copies); t += num_blocks) {
    GroupPlace group;
    if (!place_of_group(state, quantized, copies, t, warp, &group)) continue;
    const float amax =
        combine_lanes(lane_group_amax<Src>(state.copy.layout, group.src, lane), kWarpSize);
    const float scale = amax / quantized.qmax;
    lane_group_store<Src, kFormat>(state.copy.layout, group.dst, group.src, lane, scale,
                                   quantized.qmax);
    if (lane == 0) *group.scale = scale;
  }
}

namespace {

constexpr int kMaxDevices = 64;

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
    copy_kernel(const __grid_constant__ KernelParams params) {
  __shared__ ResolvedCopy copies[kMaxTasks];
  const int thread = static_cast<int>(threadIdx.x);
  if (blockIdx.x == 0 && params.entry_status != nullptr) write_entry_status(params, thread);
  // Fixed indices into mine and copied (the loops unroll), so that they stay in registers.
  ResolvedCopy mine[kTasksPerThread];
  bool copied[kTasksPerThread];
  int count = 0;
#pragma unroll
  for (int j = 0; j < kTasksPerThread; ++j) {
    copied[j] = resolve_task(params, thread * kTasksPerThread + j, &mine[j]);
    count += copied[j];
  }
  int num_copies;
  int position = block_exclusive_sum(count, &num_copies);
#pragma unroll
  for (int j = 0; j < kTasksPerThread; ++j) {
    if (copied[j]) copies[position++] = mine[j];
  }
  __syncthreads();
  copy_block_tiles(params, copies, num_copies, blockIdx.x, thread);
}

// A failure of the CUDA runtime, with what to do about the ones a user can fix. The runtime
// (this library's own, linked statically) keeps a failed call's error as its last error, which the
// cudaGetLastError() after a later launch would report as that launch's: it is cleared here.
[[noreturn]] void fail_cuda(Op op, cudaError_t error, const char* what) {
  cudaGetLastError();
  std::string advice;
  switch (error) {
    case cudaErrorInsufficientDriver:
    case cudaErrorUnsupportedPtxVersion:
      advice = concat(": this build of mamba_state_ext runs on CUDA ", CUDART_VERSION / 1000, ".",
                      CUDART_VERSION % 1000 / 10,
                      " and needs a driver that supports it; install a newer NVIDIA driver, or a "
                      "build of mamba_state_ext for the CUDA your driver supports");
      break;
    case cudaErrorNoKernelImageForDevice:
    case cudaErrorInvalidDeviceFunction:
      advice =
          ": this build has no kernel for this GPU (built for compute "
          "capabilities " MAMBA_STATE_STRINGIFY(
              __CUDA_ARCH_LIST__) "); build from source with TORCH_CUDA_ARCH_LIST set to your "
                                  "GPU's";
      break;
    default: break;
  }
  throw std::runtime_error(concat(op_prefix(op), what, " failed: ", cudaGetErrorString(error), " (",
                                  cudaGetErrorName(error), ")", advice));
}

// Lets the calling thread make CUDA calls that a stream capture in the global mode forbids (the
// first call of a process may come inside torch.cuda.graph): this library's runtime initialises,
// loads its module and queries occupancy on its first use of a device. None of these calls
// enqueues work, so none belongs in the graph.
class RelaxedCaptureMode {
 public:
  RelaxedCaptureMode() { cudaThreadExchangeStreamCaptureMode(&mode_); }
  ~RelaxedCaptureMode() { cudaThreadExchangeStreamCaptureMode(&mode_); }
  RelaxedCaptureMode(const RelaxedCaptureMode&) = delete;
  RelaxedCaptureMode& operator=(const RelaxedCaptureMode&) = delete;

 private:
  cudaStreamCaptureMode mode_ = cudaStreamCaptureModeRelaxed;
};

// Blocks of copy_kernel that fit on a device at once, read once per device.
int64_t resident_blocks(Op op, int device) {
  static std::atomic<int64_t> blocks[kMaxDevices] = {};
  if (device < 0 || device >= kMaxDevices) {  // a limit of this build, not a bad argument
    throw std::runtime_error(concat(op_prefix(op), "CUDA device ", device, " is past the ",
                                    kMaxDevices, " this build supports"));
  }
  int64_t known = blocks[device].load(std::memory_order_relaxed);
  if (known > 0) return known;
  const RelaxedCaptureMode relaxed;
  int multiprocessors = 0;
  int per_multiprocessor = 0;
  cudaError_t error =
      cudaDeviceGetAttribute(&multiprocessors, cudaDevAttrMultiProcessorCount, device);
  if (error == cudaSuccess && kDynamicSharedBytes > 48 * 1024) {
    error = cudaFuncSetAttribute(copy_kernel, cudaFuncAttributeMaxDynamicSharedMemorySize,
                                 static_cast<int>(kDynamicSharedBytes));
  }
  if (error == cudaSuccess) {
    error = cudaOccupancyMaxActiveBlocksPerMultiprocessor(&per_multiprocessor, copy_kernel,
                                                          kThreadsPerBlock, kDynamicSharedBytes);
  }
  if (error != cudaSuccess) fail_cuda(op, error, "reading the GPU's multiprocessors");
  known = static_cast<int64_t>(multiprocessors) * std::max(per_multiprocessor, 1);
  blocks[device].store(known, std::memory_order_relaxed);
  return known;
}

// The launch, on the current stream of the pools' device, with that device current.
void launch(const CopyPlan& plan, const TensorMeta& on) {
  const torch::stable::accelerator::DeviceGuard device_guard(on.device_index);
  void* stream = nullptr;
  TORCH_ERROR_CODE_CHECK(aoti_torch_get_current_cuda_stream(on.device_index, &stream));
  for (const Launch& launch : make_launches(plan, resident_blocks(plan.op, on.device_index))) {
    if (launch.num_blocks == 0) continue;
    copy_kernel<<<static_cast<unsigned int>(launch.num_blocks), kThreadsPerBlock,
                  kDynamicSharedBytes, static_cast<cudaStream_t>(stream)>>>(launch.params);
    const cudaError_t error = cudaGetLastError();
    if (error != cudaSuccess) fail_cuda(plan.op, error, "launching the kernel");
  }
}

void run_update(const UpdateCall& call) {
  launch(plan_update(call), call.states[0]);
}

void run_copy_slots(const CopySlotsCall& call) {
  launch(plan_copy_slots(call), call.states[0]);
}

const bool registered = mamba_state_operators().implement(
    "CUDA",
    {{"update", TORCH_BOX(&update_entry<run_update>)},
     {"copy_slots", TORCH_BOX(&copy_slots_entry<run_copy_slots>)}},
    __FILE__, __LINE__);

}  // namespace

// The CUDA runtime and the architectures (nvcc's __CUDA_ARCH_LIST__) this file was compiled for.
std::string cuda_build_info() {
  return "cuda=" MAMBA_STATE_STRINGIFY(CUDART_VERSION) ";archs=" MAMBA_STATE_STRINGIFY(
      __CUDA_ARCH_LIST__);
}

}  // namespace mamba_state
