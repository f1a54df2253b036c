// Marks functions that compile for both the host and a CUDA device, so that one
// kernel body serves the CPU executor and the CUDA executor (design.md §2).
#pragma once

#if defined(__CUDACC__)
#define DRR_HD __host__ __device__ __forceinline__
#else
#define DRR_HD inline
#endif
