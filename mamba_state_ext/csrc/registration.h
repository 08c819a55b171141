// Registering operators through torch's stable C shims, in static initializers. torch::stable's
// STABLE_TORCH_LIBRARY ignores a failure to open a namespace and then crashes on the first
// definition; the one such failure here is a second copy of a library in the process (say the
// package's and a CMake build), whose namespace is already defined. Then that copy registers
// nothing, and says so on stderr, and the first copy goes on serving the operators.
#pragma once

#include <torch/csrc/inductor/aoti_torch/c/shim.h>
#include <torch/csrc/stable/c/shim.h>

#include <initializer_list>

namespace mamba_state {

using BoxedKernel = void (*)(StableIValue*, uint64_t, uint64_t);

struct Kernel {
  const char* name;
  BoxedKernel boxed;
};

class OperatorNamespace {
 public:
  // Defines the namespace with these schemas, unless another library already defines it.
  OperatorNamespace(const char* ns, std::initializer_list<const char*> schemas, const char* file,
                    int line);
  OperatorNamespace(const OperatorNamespace&) = delete;
  OperatorNamespace& operator=(const OperatorNamespace&) = delete;

  // Registers the kernels for a dispatch key ("CPU", "CUDA", "CompositeExplicitAutograd"), if
  // this library defined the namespace. Returns whether it did.
  bool implement(const char* dispatch_key, std::initializer_list<Kernel> kernels, const char* file,
                 int line) const;

 private:
  const char* ns_;
  bool defined_ = false;
};

}  // namespace mamba_state
