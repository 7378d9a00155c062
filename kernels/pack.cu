// Packing and unpacking of gradients around top-k compression (paper Eq. 4b-4c with error
// feedback): the weighted candidate r_i * g + residual (in one pass, or as a scale of g and an
// accumulation into the residual), and the scatter of (index, value) pairs received from all
// ranks back into a dense buffer. (The adaptive rule's norms are `topk_seg_sumsq` in topk.cu.)
#include "common.cuh"

/// cand = weight * g + residual.
extern "C" __global__ void pack_weighted(const PackParams p, const float* __restrict__ g,
                                         const float* __restrict__ residual, float* __restrict__ cand) {
    for (u32 i = blockIdx.x * blockDim.x + threadIdx.x; i < p.len; i += gridDim.x * blockDim.x)
        cand[i] = fmaf(p.weight, g[i], residual[i]);
}

/// x *= weight (Eq. 4a: the local gradient scaled by r_i).
extern "C" __global__ void scale_inplace(const PackParams p, float* __restrict__ x) {
    for (u32 i = blockIdx.x * blockDim.x + threadIdx.x; i < p.len; i += gridDim.x * blockDim.x) x[i] *= p.weight;
}

/// y = weight * x + y, in place: with weight 1 the error-feedback accumulation a = residual + g,
/// rounded once per element as on the host.
extern "C" __global__ void axpy(const PackParams p, const float* __restrict__ x, float* __restrict__ y) {
    for (u32 i = blockIdx.x * blockDim.x + threadIdx.x; i < p.len; i += gridDim.x * blockDim.x)
        y[i] = fmaf(p.weight, x[i], y[i]);
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
