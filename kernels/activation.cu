// ReLU forward and backward, and the residual join add + ReLU, elementwise, grid-stride.
#include "common.cuh"

/// y = max(x, 0). NaN stays NaN, as in PyTorch.
extern "C" __global__ void relu_fwd(const EltParams p, const float* __restrict__ x, float* __restrict__ y) {
    for (u32 i = blockIdx.x * blockDim.x + threadIdx.x; i < p.len; i += gridDim.x * blockDim.x) {
        const float v = x[i];
        y[i] = v > 0.0f ? v : (v != v ? v : 0.0f);
    }
}

/// y = max(a + b, 0): a residual block's join (main branch plus shortcut, then ReLU) in one pass,
/// rounded as the two separate ops (the sum, then the ReLU). Only y is kept for the backward.
extern "C" __global__ void add_relu_fwd(const EltParams p, const float* __restrict__ a, const float* __restrict__ b,
                                        float* __restrict__ y) {
    for (u32 i = blockIdx.x * blockDim.x + threadIdx.x; i < p.len; i += gridDim.x * blockDim.x) {
        const float v = a[i] + b[i];
        y[i] = v > 0.0f ? v : (v != v ? v : 0.0f);
    }
}

/// dx = dy where y > 0, else 0 (the subgradient at 0 is 0, as in PyTorch). `y` may be the ReLU's
/// input or its output: both are positive at the same places.
extern "C" __global__ void relu_bwd(const EltParams p, const float* __restrict__ y, const float* __restrict__ dy,
                                    float* __restrict__ dx) {
    for (u32 i = blockIdx.x * blockDim.x + threadIdx.x; i < p.len; i += gridDim.x * blockDim.x)
        dx[i] = y[i] > 0.0f ? dy[i] : 0.0f;
}
