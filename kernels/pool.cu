// Max pooling (kernel, stride, padding; padded cells never win) and adaptive average pooling
// (PyTorch windows: start = floor(i*h/oh), end = ceil((i+1)*h/oh)), forward and backward.
// Backward passes gather per input cell instead of scattering with atomics, so they are
// deterministic.
#include "common.cuh"

/// One thread per output. `argmax` holds the winning cell's index within its (h, w) plane; the
/// first maximum in row-major window order wins ties.
extern "C" __global__ void maxpool_fwd(const PoolParams p, const float* __restrict__ x, float* __restrict__ y,
                                       u32* __restrict__ argmax) {
    const u64 total = (u64)p.n * p.c * p.oh * p.ow;
    for (u64 o = blockIdx.x * (u64)blockDim.x + threadIdx.x; o < total; o += (u64)gridDim.x * blockDim.x) {
        const u32 ox = o % p.ow, oy = (o / p.ow) % p.oh;
        const u64 plane = o / ((u64)p.oh * p.ow);
        const float* xp = x + plane * p.h * p.w;
        float best = -POS_INF;
        u32 arg = 0;
        bool found = false;
        for (u32 ky = 0; ky < p.kh; ky++) {
            const int iy = (int)(oy * p.stride + ky) - (int)p.pad;
            if (iy < 0 || iy >= (int)p.h) continue;
            for (u32 kx = 0; kx < p.kw; kx++) {
                const int ix = (int)(ox * p.stride + kx) - (int)p.pad;
                if (ix < 0 || ix >= (int)p.w) continue;
                const u32 idx = iy * p.w + ix;
                const float v = xp[idx];
                if (!found || v > best || v != v) {
                    best = v;
                    arg = idx;
                    found = true;
                    if (v != v) { ky = p.kh; break; }  // NaN propagates, as in PyTorch
                }
            }
        }
        y[o] = best;
        argmax[o] = arg;
    }
}

/// One thread per input cell: sums dy over the outputs whose argmax is this cell.
extern "C" __global__ void maxpool_bwd(const PoolParams p, const float* __restrict__ dy,
                                       const u32* __restrict__ argmax, float* __restrict__ dx) {
    const u64 total = (u64)p.n * p.c * p.h * p.w;
    for (u64 i = blockIdx.x * (u64)blockDim.x + threadIdx.x; i < total; i += (u64)gridDim.x * blockDim.x) {
        const u32 ix = i % p.w, iy = (i / p.w) % p.h;
        const u64 plane = i / ((u64)p.h * p.w);
        const u32 idx = iy * p.w + ix;
        // Outputs oy whose window [oy*s - pad, oy*s - pad + kh) contains iy.
        const int ty = (int)(iy + p.pad), tx = (int)(ix + p.pad);
        const int oy0 = ty - (int)p.kh + 1 > 0 ? (ty - (int)p.kh + 1 + (int)p.stride - 1) / (int)p.stride : 0;
        const int ox0 = tx - (int)p.kw + 1 > 0 ? (tx - (int)p.kw + 1 + (int)p.stride - 1) / (int)p.stride : 0;
        const int oy1 = min(ty / (int)p.stride, (int)p.oh - 1);
        const int ox1 = min(tx / (int)p.stride, (int)p.ow - 1);
        float s = 0.0f;
        for (int oy = oy0; oy <= oy1; oy++)
            for (int ox = ox0; ox <= ox1; ox++) {
                const u64 o = (plane * p.oh + oy) * p.ow + ox;
                if (argmax[o] == idx) s += dy[o];
            }
        dx[i] = s;
    }
}

__device__ __forceinline__ u32 win_start(u32 i, u32 in, u32 out) { return (u32)(((u64)i * in) / out); }
__device__ __forceinline__ u32 win_end(u32 i, u32 in, u32 out) { return (u32)(((u64)(i + 1) * in + out - 1) / out); }

/// One thread per output: the mean over its adaptive window.
extern "C" __global__ void adaptive_avgpool_fwd(const PoolParams p, const float* __restrict__ x,
                                                float* __restrict__ y) {
    const u64 total = (u64)p.n * p.c * p.oh * p.ow;
    for (u64 o = blockIdx.x * (u64)blockDim.x + threadIdx.x; o < total; o += (u64)gridDim.x * blockDim.x) {
        const u32 ox = o % p.ow, oy = (o / p.ow) % p.oh;
        const u64 plane = o / ((u64)p.oh * p.ow);
        const float* xp = x + plane * p.h * p.w;
        const u32 y0 = win_start(oy, p.h, p.oh), y1 = win_end(oy, p.h, p.oh);
        const u32 x0 = win_start(ox, p.w, p.ow), x1 = win_end(ox, p.w, p.ow);
        float s = 0.0f;
        for (u32 iy = y0; iy < y1; iy++)
            for (u32 ix = x0; ix < x1; ix++) s += xp[iy * p.w + ix];
        y[o] = s / (float)((y1 - y0) * (x1 - x0));
    }
}

/// One thread per input cell: sums dy / area over the (possibly overlapping) windows holding it.
extern "C" __global__ void adaptive_avgpool_bwd(const PoolParams p, const float* __restrict__ dy,
                                                float* __restrict__ dx) {
    const u64 total = (u64)p.n * p.c * p.h * p.w;
    for (u64 i = blockIdx.x * (u64)blockDim.x + threadIdx.x; i < total; i += (u64)gridDim.x * blockDim.x) {
        const u32 ix = i % p.w, iy = (i / p.w) % p.h;
        const u64 plane = i / ((u64)p.h * p.w);
        float s = 0.0f;
        for (u32 oy = 0; oy < p.oh; oy++) {
            const u32 y0 = win_start(oy, p.h, p.oh), y1 = win_end(oy, p.h, p.oh);
            if (iy < y0) break;  // windows start in increasing order
            if (iy >= y1) continue;
            for (u32 ox = 0; ox < p.ow; ox++) {
                const u32 x0 = win_start(ox, p.w, p.ow), x1 = win_end(ox, p.w, p.ow);
                if (ix < x0) break;
                if (ix >= x1) continue;
                s += dy[(plane * p.oh + oy) * p.ow + ox] / (float)((y1 - y0) * (x1 - x0));
            }
        }
        dx[i] = s;
    }
}
