#include "build_info.h"

#include <torch/csrc/stable/version.h>

#include "errors.h"

namespace mamba_state {

#ifdef MAMBA_STATE_WITH_CUDA
std::string cuda_build_info();  // cuda/copy_cuda.cu
#else
std::string cuda_build_info() {
  return "cuda=none";
}
#endif

std::string build_info() {
  constexpr unsigned long long target = TORCH_TARGET_VERSION;
  return concat("torch=", TORCH_VERSION, ";target=", target >> 56, ".", (target >> 48) & 0xff, ";",
                cuda_build_info(), ";cpu=", cpu_loops());
}

}  // namespace mamba_state
