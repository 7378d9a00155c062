// 2-D convolution, NCHW, weight [c_out, c_in, kh, kw], as implicit GEMMs (no im2col buffer):
//   forward        y[co, (b,oy,ox)]     = sum_(ci,ky,kx)  W[co,(ci,ky,kx)] * x_col[(ci,ky,kx),(b,oy,ox)]
//   backward-data  dx[ci, (b,iy,ix)]    = sum_(co,ky,kx)  W[co,ci,ky,kx]   * dy at (iy+pad-ky, ix+pad-kx)/stride
//   backward-weight dW[co, (ci,ky,kx)]  = sum_(b,oy,ox)   dy[co,(b,oy,ox)] * x_col[(ci,ky,kx),(b,oy,ox)]
// The weight gradient's reduction dimension (n*oh*ow) is long and its output small, so it is split
// over grid.z in chunks of p.k_chunk; with more than one split each z writes its partial sum to a
// workspace [splits, c_out, c_in*kh*kw] that `splitk_reduce` sums in a fixed order.
// Channel bias (conv and linear layers) is a separate pair of kernels.
#include "common.cuh"

// ---- forward ---------------------------------------------------------------------------------
struct FwdA {  // W as [c_out, c_in*kh*kw]
    const float* w;
    ConvParams p;
    __device__ float operator()(u32 co, u32 k) const {
        const u32 K = p.c_in * p.kh * p.kw;
        return (co < p.c_out && k < K) ? w[(u64)co * K + k] : 0.0f;
    }
};

/// x_col[(ci,ky,kx), (b,oy,ox)]: the input pixel under kernel tap (ky,kx) of output (oy,ox).
__device__ __forceinline__ float im2col_at(const float* x, const ConvParams& p, u32 k, u32 n) {
    const u32 khw = p.kh * p.kw, ohw = p.oh * p.ow;
    if (k >= p.c_in * khw || n >= p.n * ohw) return 0.0f;
    const u32 ci = k / khw, r = k % khw, ky = r / p.kw, kx = r % p.kw;
    const u32 b = n / ohw, q = n % ohw, oy = q / p.ow, ox = q % p.ow;
    const int iy = (int)(oy * p.stride + ky) - (int)p.pad;
    const int ix = (int)(ox * p.stride + kx) - (int)p.pad;
    if (iy < 0 || ix < 0 || iy >= (int)p.h || ix >= (int)p.w) return 0.0f;
    return x[(((u64)b * p.c_in + ci) * p.h + iy) * p.w + ix];
}

struct FwdB {
    const float* x;
    ConvParams p;
    __device__ float operator()(u32 k, u32 n) const { return im2col_at(x, p, k, n); }
};

struct FwdStore {  // (co, (b,oy,ox)) -> y[b, co, oy, ox]
    float* y;
    ConvParams p;
    __device__ void operator()(u32 co, u32 n, float acc) const {
        const u32 ohw = p.oh * p.ow, b = n / ohw, q = n % ohw;
        float* dst = y + ((u64)b * p.c_out + co) * ohw + q;
        *dst = p.beta == 0.0f ? acc : acc + p.beta * *dst;
    }
};

extern "C" __global__ void __launch_bounds__(SIMT_THREADS)
conv2d_fwd_simt(const ConvParams p, const float* __restrict__ x, const float* __restrict__ w, float* y) {
    gemm_core_simt(FwdA{w, p}, FwdB{x, p}, FwdStore{y, p}, p.c_out, p.n * p.oh * p.ow, 0, p.c_in * p.kh * p.kw);
}

// ---- backward data ---------------------------------------------------------------------------
struct DataA {  // A[ci, (co,ky,kx)] = W[co, ci, ky, kx]
    const float* w;
    ConvParams p;
    __device__ float operator()(u32 ci, u32 k) const {
        const u32 khw = p.kh * p.kw;
        if (ci >= p.c_in || k >= p.c_out * khw) return 0.0f;
        const u32 co = k / khw, r = k % khw;
        return w[((u64)co * p.c_in + ci) * khw + r];
    }
};

struct DataB {  // B[(co,ky,kx), (b,iy,ix)] = dy[b, co, oy, ox] where oy*stride - pad + ky == iy
    const float* dy;
    ConvParams p;
    __device__ float operator()(u32 k, u32 n) const {
        const u32 khw = p.kh * p.kw, hw = p.h * p.w;
        if (k >= p.c_out * khw || n >= p.n * hw) return 0.0f;
        const u32 co = k / khw, r = k % khw, ky = r / p.kw, kx = r % p.kw;
        const u32 b = n / hw, q = n % hw, iy = q / p.w, ix = q % p.w;
        const int ty = (int)(iy + p.pad) - (int)ky, tx = (int)(ix + p.pad) - (int)kx;
        if (ty < 0 || tx < 0 || ty % p.stride != 0 || tx % p.stride != 0) return 0.0f;
        const u32 oy = ty / p.stride, ox = tx / p.stride;
        if (oy >= p.oh || ox >= p.ow) return 0.0f;
        return dy[(((u64)b * p.c_out + co) * p.oh + oy) * p.ow + ox];
    }
};

struct DataStore {  // (ci, (b,iy,ix)) -> dx[b, ci, iy, ix]
    float* dx;
    ConvParams p;
    __device__ void operator()(u32 ci, u32 n, float acc) const {
        const u32 hw = p.h * p.w, b = n / hw, q = n % hw;
        float* dst = dx + ((u64)b * p.c_in + ci) * hw + q;
        *dst = p.beta == 0.0f ? acc : acc + p.beta * *dst;
    }
};

extern "C" __global__ void __launch_bounds__(SIMT_THREADS)
conv2d_bwd_data_simt(const ConvParams p, const float* __restrict__ dy, const float* __restrict__ w, float* dx) {
    gemm_core_simt(DataA{w, p}, DataB{dy, p}, DataStore{dx, p}, p.c_in, p.n * p.h * p.w, 0, p.c_out * p.kh * p.kw);
}

// ---- backward weight -------------------------------------------------------------------------
struct WeightA {  // A[co, (b,oy,ox)] = dy[b, co, oy, ox]
    const float* dy;
    ConvParams p;
    __device__ float operator()(u32 co, u32 k) const {
        const u32 ohw = p.oh * p.ow;
        if (co >= p.c_out || k >= p.n * ohw) return 0.0f;
        const u32 b = k / ohw, q = k % ohw;
        return dy[((u64)b * p.c_out + co) * ohw + q];
    }
};

struct WeightB {  // B[(b,oy,ox), (ci,ky,kx)] = x_col transposed
    const float* x;
    ConvParams p;
    __device__ float operator()(u32 k, u32 n) const { return im2col_at(x, p, n, k); }
};

struct WeightStore {  // (co, (ci,ky,kx)) -> out[z, co, ci, ky, kx]
    float* out;
    ConvParams p;
    __device__ void operator()(u32 co, u32 n, float acc) const {
        const u32 N = p.c_in * p.kh * p.kw;
        float* dst = out + ((u64)blockIdx.z * p.c_out + co) * N + n;
        *dst = p.beta == 0.0f ? acc : acc + p.beta * *dst;
    }
};

__device__ __forceinline__ void split_range(const ConvParams& p, u32* kb, u32* ke) {
    const u32 K = p.n * p.oh * p.ow;
    *kb = min(blockIdx.z * p.k_chunk, K);
    *ke = min(*kb + p.k_chunk, K);
}

extern "C" __global__ void __launch_bounds__(SIMT_THREADS)
conv2d_bwd_weight_simt(const ConvParams p, const float* __restrict__ x, const float* __restrict__ dy, float* out) {
    u32 kb, ke;
    split_range(p, &kb, &ke);
    gemm_core_simt(WeightA{dy, p}, WeightB{x, p}, WeightStore{out, p}, p.c_out, p.c_in * p.kh * p.kw, kb, ke);
}

// ---- tensor-core variants (sm_80+) -------------------------------------------------------------
#if __CUDA_ARCH__ >= 800
extern "C" __global__ void __launch_bounds__(MMA_THREADS)
conv2d_fwd_tf32(const ConvParams p, const float* __restrict__ x, const float* __restrict__ w, float* y) {
    gemm_core_tf32(FwdA{w, p}, FwdB{x, p}, FwdStore{y, p}, p.c_out, p.n * p.oh * p.ow, 0, p.c_in * p.kh * p.kw);
}

extern "C" __global__ void __launch_bounds__(MMA_THREADS)
conv2d_bwd_data_tf32(const ConvParams p, const float* __restrict__ dy, const float* __restrict__ w, float* dx) {
    gemm_core_tf32(DataA{w, p}, DataB{dy, p}, DataStore{dx, p}, p.c_in, p.n * p.h * p.w, 0, p.c_out * p.kh * p.kw);
}

extern "C" __global__ void __launch_bounds__(MMA_THREADS)
conv2d_bwd_weight_tf32(const ConvParams p, const float* __restrict__ x, const float* __restrict__ dy, float* out) {
    u32 kb, ke;
    split_range(p, &kb, &ke);
    gemm_core_tf32(WeightA{dy, p}, WeightB{x, p}, WeightStore{out, p}, p.c_out, p.c_in * p.kh * p.kw, kb, ke);
}
#endif

// ---- split-K reduction ---------------------------------------------------------------------------
/// out[i] = sum_z ws[z, i] + beta * out[i], summed in z order (deterministic).
extern "C" __global__ void splitk_reduce(const ReduceParams p, const float* __restrict__ ws, float* out) {
    for (u32 i = blockIdx.x * blockDim.x + threadIdx.x; i < p.len; i += gridDim.x * blockDim.x) {
        float s = 0.0f;
        for (u32 z = 0; z < p.splits; z++) s += ws[(u64)z * p.len + i];
        out[i] = p.beta == 0.0f ? s : s + p.beta * out[i];
    }
}

// ---- channel bias ----------------------------------------------------------------------------------
/// y[b, c, i] += bias[c]. Grid-stride over n*c*hw.
extern "C" __global__ void bias_fwd(const BiasParams p, const float* __restrict__ bias, float* y) {
    const u64 total = (u64)p.n * p.c * p.hw;
    for (u64 i = blockIdx.x * (u64)blockDim.x + threadIdx.x; i < total; i += (u64)gridDim.x * blockDim.x)
        y[i] += bias[(i / p.hw) % p.c];
}

/// dbias[c] = sum_(b,i) dy[b, c, i] + beta * dbias[c]. One block per channel.
extern "C" __global__ void bias_bwd(const BiasParams p, const float* __restrict__ dy, float* dbias) {
    const u32 c = blockIdx.x;
    const u32 m = p.n * p.hw;
    float s = 0.0f;
    for (u32 j = threadIdx.x; j < m; j += blockDim.x) {
        const u32 b = j / p.hw, i = j % p.hw;
        s += dy[((u64)b * p.c + c) * p.hw + i];
    }
    s = block_sum(s);
    if (threadIdx.x == 0) dbias[c] = p.beta == 0.0f ? s : s + p.beta * dbias[c];
}
