// Packing and unpacking of gradients around top-k compression (paper Eq. 4b-4c with error
// feedback): the weighted candidate r_i * g + residual, and the scatter of (index, value) pairs
// received from all ranks back into a dense buffer.
#include "common.cuh"

/// cand = weight * g + residual.
extern "C" __global__ void pack_weighted(const PackParams p, const float* __restrict__ g,
                                         const float* __restrict__ residual, float* __restrict__ cand) {
    for (u32 i = blockIdx.x * blockDim.x + threadIdx.x; i < p.len; i += gridDim.x * blockDim.x)
        cand[i] = fmaf(p.weight, g[i], residual[i]);
}

/// dense[idx[j]] += scale * val[j]; indices repeat across ranks, hence the atomics. Out-of-range
/// indices are skipped.
extern "C" __global__ void scatter_add(const ScatterParams p, const u32* __restrict__ idx,
                                       const float* __restrict__ val, float* dense) {
    for (u32 j = blockIdx.x * blockDim.x + threadIdx.x; j < p.count; j += gridDim.x * blockDim.x) {
        const u32 i = idx[j];
        if (i < p.len) atomicAdd(&dense[i], p.scale * val[j]);
    }
}

/// dense[idx[j]] = 0: clears the sent entries of the error-feedback residual.
extern "C" __global__ void scatter_zero(const ScatterParams p, const u32* __restrict__ idx, float* dense) {
    for (u32 j = blockIdx.x * blockDim.x + threadIdx.x; j < p.count; j += gridDim.x * blockDim.x) {
        const u32 i = idx[j];
        if (i < p.len) dense[i] = 0.0f;
    }
}
