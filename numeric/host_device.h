// Marks functions that compile for both the host and a CUDA device, so that one
// kernel body serves the CPU executor and the CUDA executor (design.md §2).
#pragma once

#if defined(__CUDACC__)
#define DRR_HD __host__ __device__ __forceinline__
#else
#define DRR_HD inline
#endif

// DRR_HD for once-per-ray set-up called from a per-sample loop: inlined on
// the device like every body, kept out of line by the host compiler, where
// inlining it into the loop's function costs registers in the loop (g++ 12
// spilled the pose gradient's per-ray constants: 2.4% more instructions and
// about 5% more time per DRR on the reference case).
#if defined(__CUDACC__)
#define DRR_HD_RAY_SETUP DRR_HD
#else
#define DRR_HD_RAY_SETUP inline __attribute__((noinline))
#endif

// DRR_HD for the per-sample work of a ray's loop: always inlined into it.
// Left to itself the host compiler keeps it out of line once the calling
// body holds several loops (the pose gradient's sampling and label
// variants: a call per sample cost 16% on the reference case).
#if defined(__CUDACC__)
#define DRR_HD_SAMPLE DRR_HD
#else
#define DRR_HD_SAMPLE inline __attribute__((always_inline))
#endif

// DRR_HD always inlined on the host too, for once-per-ray set-up whose
// inlining costs its callers' loops no registers (unlike DRR_HD_RAY_SETUP's):
// left to itself the host compiler inlines a large function called from one
// place only, and keeps it out of line once a second caller appears
// (Siddon's StartSiddon, once the vectorised gradient set up walks too: 55%
// more instructions in the vectorised render's set-up of its lanes, 2–3%
// more in a Siddon DRR of the reference case).
#if defined(__CUDACC__)
#define DRR_HD_INLINE DRR_HD
#else
#define DRR_HD_INLINE inline __attribute__((always_inline))
#endif
