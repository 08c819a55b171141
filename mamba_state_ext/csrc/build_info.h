// What this library was built from, as "torch=2.14.1;target=2.10;cuda=13000;archs=800,900;
// cpu=avx512" ("cuda=none" without CUDA): the headers' torch, the stable ABI it targets (the
// oldest torch it loads under), the CUDA runtime and architectures of its kernel, and the one
// fact of this process rather than the build: the instructions the CPU kernel's quantize loops
// run with here (cpu_loops). The operator mamba_state::build_info, which Python's loader and C++
// servers read through the dispatcher.
#pragma once

#include <string>

namespace mamba_state {

std::string build_info();

// "avx512", "avx2" or "default": the widest of the CPU kernel's quantize loops this CPU runs,
// capped by ATEN_CPU_CAPABILITY (cpu/copy_cpu.cpp).
const char* cpu_loops();

}  // namespace mamba_state
