#include "build_info.h"

#include <torch/version.h>

namespace mamba_state {

#ifdef MAMBA_STATE_WITH_CUDA
const char* cuda_build_info();  // cuda/update_cuda.cu
#else
const char* cuda_build_info() { return "cuda=none"; }
#endif

std::string build_info() { return std::string("torch=") + TORCH_VERSION + ";" + cuda_build_info(); }

}  // namespace mamba_state
