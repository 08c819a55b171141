#include "registration.h"

#include <dlfcn.h>
#include <torch/csrc/stable/version.h>

#include <cstdio>

namespace mamba_state {
namespace {

const char* this_library() {
  Dl_info info{};
  return dladdr(reinterpret_cast<void*>(&this_library), &info) && info.dli_fname ? info.dli_fname
                                                                                 : "this library";
}

}  // namespace

OperatorNamespace::OperatorNamespace(const char* ns, std::initializer_list<const char*> schemas,
                                     const char* file, int line)
    : ns_(ns) {
  TorchLibraryHandle library = nullptr;
  if (aoti_torch_library_init_def(ns, file, static_cast<uint32_t>(line), &library) !=
      AOTI_TORCH_SUCCESS) {
    std::fprintf(stderr,
                 "mamba_state_ext: the operator namespace %s is defined already (another copy "
                 "of the library is loaded); %s registers nothing\n",
                 ns, this_library());
    return;
  }
  for (const char* schema : schemas) {
    if (aoti_torch_library_def(library, schema) != AOTI_TORCH_SUCCESS) {
      std::fprintf(stderr, "mamba_state_ext: could not define %s::%s\n", ns, schema);
      return;
    }
  }
  defined_ = true;  // the library object lives as long as the process: it is never deleted
}

bool OperatorNamespace::implement(const char* dispatch_key, std::initializer_list<Kernel> kernels,
                                  const char* file, int line) const {
  if (!defined_) return false;
  TorchLibraryHandle library = nullptr;
  if (aoti_torch_library_init_impl(ns_, dispatch_key, file, static_cast<uint32_t>(line),
                                   &library) != AOTI_TORCH_SUCCESS) {
    return false;
  }
  for (const Kernel& kernel : kernels) {
    if (torch_library_impl(library, kernel.name, kernel.boxed, TORCH_ABI_VERSION) !=
        AOTI_TORCH_SUCCESS) {
      std::fprintf(stderr, "mamba_state_ext: could not register the %s kernel of %s::%s\n",
                   dispatch_key, ns_, kernel.name);
      return false;
    }
  }
  return true;
}

}  // namespace mamba_state
