// What this library was built from, as "torch=2.14.1;target=2.10;cuda=13000;archs=800,900"
// ("cuda=none" without CUDA): the headers' torch, the stable ABI it targets (the oldest torch it
// loads under), and the CUDA runtime and architectures of its kernel. The operator
// mamba_state::build_info, which Python's loader and C++ servers read through the dispatcher.
#pragma once

#include <string>

namespace mamba_state {

std::string build_info();

}  // namespace mamba_state
