// Softmax cross-entropy over [n, classes] logits with integer labels, and top-1/top-5 counting.
// The loss is the mean over the batch: the forward writes per-sample losses and `sum_scaled`
// reduces them in a fixed order; the backward is (softmax - onehot) * scale with scale = g / n.
#include "common.cuh"

/// One block per sample: probs = softmax(z), loss_i = logsumexp(z) - z[label].
extern "C" __global__ void xent_fwd(const XentParams p, const float* __restrict__ logits,
                                    const u32* __restrict__ labels, float* __restrict__ probs,
                                    float* __restrict__ loss_rows) {
    const u32 r = blockIdx.x;
    const float* z = logits + (u64)r * p.classes;
    float* pr = probs + (u64)r * p.classes;
    float mx = -POS_INF;
    for (u32 j = threadIdx.x; j < p.classes; j += blockDim.x) mx = fmaxf(mx, z[j]);
    mx = block_max(mx);
    float s = 0.0f;
    for (u32 j = threadIdx.x; j < p.classes; j += blockDim.x) s += expf(z[j] - mx);
    s = block_sum(s);
    const float inv = 1.0f / s;
    for (u32 j = threadIdx.x; j < p.classes; j += blockDim.x) pr[j] = expf(z[j] - mx) * inv;
    // An out-of-range label gives a NaN loss (caught as divergence) instead of a stray read.
    const u32 y = labels[r];
    if (threadIdx.x == 0) loss_rows[r] = y < p.classes ? logf(s) + mx - z[y] : __int_as_float(0x7fc00000);
}

/// dlogits = (probs - onehot(label)) * scale. Grid-stride over n * classes.
extern "C" __global__ void xent_bwd(const XentParams p, const float* __restrict__ probs,
                                    const u32* __restrict__ labels, float* __restrict__ dlogits) {
    const u64 total = (u64)p.n * p.classes;
    for (u64 i = blockIdx.x * (u64)blockDim.x + threadIdx.x; i < total; i += (u64)gridDim.x * blockDim.x) {
        const u32 r = i / p.classes, j = i % p.classes;
        dlogits[i] = (probs[i] - (j == labels[r] ? 1.0f : 0.0f)) * p.scale;
    }
}

/// out[0] = scale * sum(v[0..n]) in one block (fixed order). XentParams.n is the length.
extern "C" __global__ void sum_scaled(const XentParams p, const float* __restrict__ v, float* __restrict__ out) {
    float s = 0.0f;
    for (u32 i = threadIdx.x; i < p.n; i += blockDim.x) s += v[i];
    s = block_sum(s);
    if (threadIdx.x == 0) out[0] = s * p.scale;
}

/// counts[0] += samples whose label ranks first, counts[1] += samples whose label is in the top 5.
/// Rank = classes with a strictly larger logit, so a tie with the label counts as correct.
extern "C" __global__ void topk_correct(const XentParams p, const float* __restrict__ logits,
                                        const u32* __restrict__ labels, u32* __restrict__ counts) {
    for (u32 r = blockIdx.x * blockDim.x + threadIdx.x; r < p.n; r += gridDim.x * blockDim.x) {
        const float* z = logits + (u64)r * p.classes;
        const u32 y = labels[r];
        if (y >= p.classes) continue;  // never counted correct
        const float zy = z[y];
        u32 rank = 0;
        for (u32 j = 0; j < p.classes && rank < 5; j++) rank += z[j] > zy ? 1 : 0;
        if (rank < 1) atomicAdd(&counts[0], 1u);
        if (rank < 5) atomicAdd(&counts[1], 1u);
    }
}
