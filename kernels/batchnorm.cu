// Batch normalisation over [n, c, hw] with per-channel statistics, PyTorch BatchNorm2d semantics:
// training normalises with the biased batch variance and updates the running statistics with
// momentum (running = (1 - momentum) * running + momentum * batch) using the unbiased variance;
// evaluation normalises with the running statistics. One block of 1024 threads per channel for the
// reductions (ops.rs `per_channel`).
#include "common.cuh"

__device__ __forceinline__ u64 bn_index(const BnParams& p, u32 ch, u32 j) {
    return ((u64)(j / p.hw) * p.c + ch) * p.hw + j % p.hw;
}

/// Training forward. Saves the batch mean and 1/sqrt(var + eps) for the backward pass.
extern "C" __global__ void __launch_bounds__(1024) batchnorm_fwd_train(const BnParams p, const float* __restrict__ x,
                                               const float* __restrict__ gamma, const float* __restrict__ beta,
                                               float* __restrict__ y, float* __restrict__ save_mean,
                                               float* __restrict__ save_invstd, float* running_mean,
                                               float* running_var) {
    const u32 ch = blockIdx.x, m = p.n * p.hw;
    float s = 0.0f;
    for (u32 j = threadIdx.x; j < m; j += blockDim.x) s += x[bn_index(p, ch, j)];
    const float mean = block_sum(s) / (float)m;
    // Second pass over the deviations: no cancellation from E[x^2] - E[x]^2.
    float q = 0.0f;
    for (u32 j = threadIdx.x; j < m; j += blockDim.x) {
        const float d = x[bn_index(p, ch, j)] - mean;
        q += d * d;
    }
    const float var = block_sum(q) / (float)m;
    const float invstd = rsqrtf(var + p.eps);
    const float a = gamma[ch] * invstd, b = beta[ch] - mean * a;
    for (u32 j = threadIdx.x; j < m; j += blockDim.x) {
        const u64 i = bn_index(p, ch, j);
        y[i] = fmaf(x[i], a, b);
    }
    if (threadIdx.x == 0) {
        save_mean[ch] = mean;
        save_invstd[ch] = invstd;
        const float unbiased = m > 1 ? var * (float)m / (float)(m - 1) : var;
        running_mean[ch] = (1.0f - p.momentum) * running_mean[ch] + p.momentum * mean;
        running_var[ch] = (1.0f - p.momentum) * running_var[ch] + p.momentum * unbiased;
    }
}

/// Evaluation forward with the running statistics. Grid-stride over all elements.
extern "C" __global__ void batchnorm_fwd_eval(const BnParams p, const float* __restrict__ x,
                                              const float* __restrict__ gamma, const float* __restrict__ beta,
                                              const float* __restrict__ running_mean,
                                              const float* __restrict__ running_var, float* __restrict__ y) {
    const u64 total = (u64)p.n * p.c * p.hw;
    for (u64 i = blockIdx.x * (u64)blockDim.x + threadIdx.x; i < total; i += (u64)gridDim.x * blockDim.x) {
        const u32 ch = (i / p.hw) % p.c;
        const float a = gamma[ch] * rsqrtf(running_var[ch] + p.eps);
        y[i] = (x[i] - running_mean[ch]) * a + beta[ch];
    }
}

/// Backward of the training forward:
///   dbeta = sum dy, dgamma = sum dy * xhat,
///   dx = gamma * invstd / m * (m * dy - dbeta - xhat * dgamma).
extern "C" __global__ void __launch_bounds__(1024) batchnorm_bwd(const BnParams p, const float* __restrict__ x, const float* __restrict__ dy,
                                         const float* __restrict__ gamma, const float* __restrict__ save_mean,
                                         const float* __restrict__ save_invstd, float* __restrict__ dx,
                                         float* __restrict__ dgamma, float* __restrict__ dbeta) {
    const u32 ch = blockIdx.x, m = p.n * p.hw;
    const float mean = save_mean[ch], invstd = save_invstd[ch];
    float sdy = 0.0f, sdyx = 0.0f;
    for (u32 j = threadIdx.x; j < m; j += blockDim.x) {
        const u64 i = bn_index(p, ch, j);
        const float g = dy[i];
        sdy += g;
        sdyx += g * (x[i] - mean) * invstd;
    }
    sdy = block_sum(sdy);
    sdyx = block_sum(sdyx);
    const float k = gamma[ch] * invstd / (float)m;
    for (u32 j = threadIdx.x; j < m; j += blockDim.x) {
        const u64 i = bn_index(p, ch, j);
        const float xhat = (x[i] - mean) * invstd;
        dx[i] = k * ((float)m * dy[i] - sdy - xhat * sdyx);
    }
    if (threadIdx.x == 0) {
        dgamma[ch] = sdyx;
        dbeta[ch] = sdy;
    }
}
