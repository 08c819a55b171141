// What this library was built against, as "torch=2.14.1;cuda=13000;archs=800,900" ("cuda=none"
// without CUDA). A C symbol, so that Python (ctypes or the _C module) and C++ can read it.
#include <torch/version.h>

#include <string>

namespace mamba_state {
#ifdef MAMBA_STATE_WITH_CUDA
const char* cuda_build_info();  // cuda/update_cuda.cu
#else
const char* cuda_build_info() { return "cuda=none"; }
#endif
}  // namespace mamba_state

extern "C" const char* mamba_state_build_info() {
  static const std::string info =
      std::string("torch=") + TORCH_VERSION + ";" + mamba_state::cuda_build_info();
  return info.c_str();
}
