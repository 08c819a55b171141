// Macros for code that both kernels share: compiled for the host by the C++ compiler, and for the
// host and the device by nvcc. On the device every step is inlined into the one kernel: a step
// left out of line takes its pointers as generic ones, and its loads and stores stop being the
// global ones (LDG, STG) that scripts/check_sass.py looks for.
#pragma once

#if defined(__CUDACC__)
#define MAMBA_STATE_HOST_DEVICE __host__ __device__ __forceinline__
#define MAMBA_STATE_UNROLL _Pragma("unroll")
#define MAMBA_STATE_NO_UNROLL _Pragma("unroll 1")
#else
#define MAMBA_STATE_HOST_DEVICE inline
#define MAMBA_STATE_UNROLL
#define MAMBA_STATE_NO_UNROLL
#endif
