// Packing and unpacking of gradients around top-k compression (paper Eq. 4b-4c with error
// feedback): the weighted candidate r_i * g + residual (in one pass, or as a scale of g and an
// accumulation into the residual), the norms the adaptive rule needs, and the scatter of
// (index, value) pairs received from all ranks back into a dense buffer.
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

/// partial[b] = sum of x[i]^2 in double over chunk b = [b * chunk, min(len, (b + 1) * chunk)).
/// One block per chunk; blockDim.x a multiple of 32. The order of additions is fixed by the
/// launch shape, so the sums are run-to-run identical.
extern "C" __global__ void sumsq_partial(const NormParams p, const float* __restrict__ x, double* __restrict__ partial) {
    __shared__ double part[32];
    const u32 start = blockIdx.x * p.chunk, end = min(p.len, start + p.chunk);
    double s = 0.0;
    for (u32 i = start + threadIdx.x; i < end; i += blockDim.x) {
        const double v = (double)x[i];
        s = fma(v, v, s);
    }
    for (int o = 16; o > 0; o >>= 1) s += __shfl_xor_sync(0xffffffffu, s, o);
    const u32 lane = threadIdx.x & 31, wid = threadIdx.x >> 5, nw = blockDim.x >> 5;
    if (lane == 0) part[wid] = s;
    __syncthreads();
    if (wid == 0) {
        s = lane < nw ? part[lane] : 0.0;
        for (int o = 16; o > 0; o >>= 1) s += __shfl_xor_sync(0xffffffffu, s, o);
        if (lane == 0) partial[blockIdx.x] = s;
    }
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
