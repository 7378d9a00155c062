// SGD with momentum and weight decay, PyTorch semantics (dampening 0, no Nesterov):
//   d = g + weight_decay * w;  buf = momentum * buf + d;  w -= lr * buf.
// The momentum buffer starts at zero, which matches PyTorch's first step (buf = d).
#include "common.cuh"

extern "C" __global__ void sgd_momentum(const SgdParams p, float* __restrict__ w, const float* __restrict__ g,
                                        float* __restrict__ buf) {
    for (u32 i = blockIdx.x * blockDim.x + threadIdx.x; i < p.len; i += gridDim.x * blockDim.x) {
        const float d = fmaf(p.weight_decay, w[i], g[i]);
        const float b = fmaf(p.momentum, buf[i], d);
        buf[i] = b;
        w[i] -= p.lr * b;
    }
}
