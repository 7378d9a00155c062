// Inverted dropout forward and backward, elementwise, grid-stride. Each element's keep/drop
// decision is a pure function of (seed, index), so no random state lives on the device, any
// launch shape draws the same mask, and the host can reproduce it (`ops::splitmix64`).
#include "common.cuh"

/// The i-th value (from 0) of the SplitMix64 stream started at `seed`: SplitMix64's output mix of
/// seed + (i + 1) * gamma, gamma = 2^64 / golden ratio. Distinct seeds give unrelated streams.
__device__ __forceinline__ u64 splitmix64(u64 seed, u64 i) {
    u64 z = seed + (i + 1) * 0x9E3779B97F4A7C15ull;
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

/// Drops element i with probability p (mask 0, y = 0) and keeps it otherwise (mask 1,
/// y = x * scale), as `cpu::dropout_forward` but with the decision drawn from the hash.
extern "C" __global__ void dropout_fwd(const DropoutParams p, const float* __restrict__ x, float* __restrict__ y,
                                       u8* __restrict__ mask) {
    const u64 seed = ((u64)p.seed_hi << 32) | p.seed_lo;
    for (u32 i = blockIdx.x * blockDim.x + threadIdx.x; i < p.len; i += gridDim.x * blockDim.x) {
        const bool keep = (u32)(splitmix64(seed, i) >> 32) >= p.threshold;
        mask[i] = keep ? 1 : 0;
        y[i] = keep ? x[i] * p.scale : 0.0f;
    }
}

/// dx = dy * scale where the forward kept the element, else 0 (dx = dy * mask / (1 - p)).
extern "C" __global__ void dropout_bwd(const DropoutParams p, const u8* __restrict__ mask, const float* __restrict__ dy,
                                       float* __restrict__ dx) {
    for (u32 i = blockIdx.x * blockDim.x + threadIdx.x; i < p.len; i += gridDim.x * blockDim.x)
        dx[i] = mask[i] ? dy[i] * p.scale : 0.0f;
}
