// 2-D convolution, NCHW, weight [c_out, c_in, kh, kw], as implicit GEMMs (no im2col buffer):
//   forward        y[co, (b,oy,ox)]     = sum_(ci,ky,kx)  W[co,(ci,ky,kx)] * x_col[(ci,ky,kx),(b,oy,ox)]
//   backward-data  dx[ci, (b,iy,ix)]    = sum_(co,ky,kx)  W[co,ci,ky,kx]   * dy at (iy+pad-ky, ix+pad-kx)/stride
//   backward-weight dW[co, (ci,ky,kx)]  = sum_(b,oy,ox)   dy[co,(b,oy,ox)] * x_col[(ci,ky,kx),(b,oy,ox)]
// The weight gradient's reduction dimension (n*oh*ow) is long and its output small, so it is split
// over grid.z in chunks of p.k_chunk; with more than one split each z writes its partial sum to a
// workspace [splits, c_out, c_in*kh*kw] that `splitk_reduce` sums in a fixed order.
// Channel bias (conv and linear layers) is a separate pair of kernels.
//
// The loaders split flat GEMM indices into (channel, ky, kx) and (b, y, x) with FastDivmod
// (common.cuh): every kernel builds its divisors once per thread at entry (ConvDiv), and each
// element fetched then costs multiply-highs and shifts instead of 32-bit divisions.
#include "common.cuh"

/// The divisors of one pass's index maps, built once per thread at kernel entry:
///   k over [c, kh, kw] -> (c, ky, kx):  c = k / khw, ky = (k % khw) / kw, kx = (k % khw) % kw
///   n over [b, ph, pw] -> (b, y, x):    b = n / plane, y = (n % plane) / row, x = ... % row
/// where the pixel grid (ph, pw) is the output's (oh, ow) for forward and backward-weight, the
/// input's (h, w) for backward-data.
struct ConvDiv {
    FastDivmod khw, kw, plane, row;
    __device__ ConvDiv(const ConvParams& p, u32 ph, u32 pw)
        : khw(p.kh * p.kw), kw(p.kw), plane(ph * pw), row(pw) {}
    /// k -> (channel, kernel row, kernel column).
    __device__ __forceinline__ void tap(u32 k, u32* c, u32* ky, u32* kx) const {
        u32 r;
        khw.divmod(k, c, &r);
        kw.divmod(r, ky, kx);
    }
    /// n -> (image, pixel row, pixel column) on the pass's pixel grid.
    __device__ __forceinline__ void pixel(u32 n, u32* b, u32* y, u32* x) const {
        u32 q;
        plane.divmod(n, b, &q);
        row.divmod(q, y, x);
    }
};

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
/// `d` is the forward pass's ConvDiv (pixel grid oh x ow).
__device__ __forceinline__ float im2col_at(const float* x, const ConvParams& p, const ConvDiv& d, u32 k, u32 n) {
    if (k >= p.c_in * p.kh * p.kw || n >= p.n * p.oh * p.ow) return 0.0f;
    u32 ci, ky, kx, b, oy, ox;
    d.tap(k, &ci, &ky, &kx);
    d.pixel(n, &b, &oy, &ox);
    const int iy = (int)(oy * p.stride + ky) - (int)p.pad;
    const int ix = (int)(ox * p.stride + kx) - (int)p.pad;
    if (iy < 0 || ix < 0 || iy >= (int)p.h || ix >= (int)p.w) return 0.0f;
    return x[(((u64)b * p.c_in + ci) * p.h + iy) * p.w + ix];
}

struct FwdB {
    const float* x;
    ConvParams p;
    ConvDiv d;
    __device__ float operator()(u32 k, u32 n) const { return im2col_at(x, p, d, k, n); }
};

struct FwdStore {  // (co, (b,oy,ox)) -> y[b, co, oy, ox]
    float* y;
    ConvParams p;
    FastDivmod ohw;
    __device__ void operator()(u32 co, u32 n, float acc) const {
        u32 b, q;
        ohw.divmod(n, &b, &q);
        float* dst = y + ((u64)b * p.c_out + co) * ohw.d + q;
        *dst = p.beta == 0.0f ? acc : acc + p.beta * *dst;
    }
};

extern "C" __global__ void __launch_bounds__(SIMT_THREADS)
conv2d_fwd_simt(const ConvParams p, const float* __restrict__ x, const float* __restrict__ w, float* y) {
    const ConvDiv d(p, p.oh, p.ow);
    gemm_core_simt(FwdA{w, p}, FwdB{x, p, d}, FwdStore{y, p, d.plane}, p.c_out, p.n * p.oh * p.ow, 0,
                   p.c_in * p.kh * p.kw);
}

// ---- backward data ---------------------------------------------------------------------------
struct DataA {  // A[ci, (co,ky,kx)] = W[co, ci, ky, kx]
    const float* w;
    ConvParams p;
    FastDivmod khw;
    __device__ float operator()(u32 ci, u32 k) const {
        if (ci >= p.c_in || k >= p.c_out * khw.d) return 0.0f;
        u32 co, r;
        khw.divmod(k, &co, &r);
        return w[((u64)co * p.c_in + ci) * khw.d + r];
    }
};

struct DataB {  // B[(co,ky,kx), (b,iy,ix)] = dy[b, co, oy, ox] where oy*stride - pad + ky == iy
    const float* dy;
    ConvParams p;
    ConvDiv d;          // pixel grid h x w
    FastDivmod stride;
    __device__ float operator()(u32 k, u32 n) const {
        if (k >= p.c_out * p.kh * p.kw || n >= p.n * p.h * p.w) return 0.0f;
        u32 co, ky, kx, b, iy, ix;
        d.tap(k, &co, &ky, &kx);
        d.pixel(n, &b, &iy, &ix);
        const int ty = (int)(iy + p.pad) - (int)ky, tx = (int)(ix + p.pad) - (int)kx;
        if (ty < 0 || tx < 0) return 0.0f;
        // ty, tx >= 0 from here, so their unsigned quotient and remainder are those of `/`, `%`.
        u32 oy, ox, ry, rx;
        stride.divmod((u32)ty, &oy, &ry);
        stride.divmod((u32)tx, &ox, &rx);
        if (ry != 0 || rx != 0 || oy >= p.oh || ox >= p.ow) return 0.0f;
        return dy[(((u64)b * p.c_out + co) * p.oh + oy) * p.ow + ox];
    }
};

struct DataStore {  // (ci, (b,iy,ix)) -> dx[b, ci, iy, ix]
    float* dx;
    ConvParams p;
    FastDivmod hw;
    __device__ void operator()(u32 ci, u32 n, float acc) const {
        u32 b, q;
        hw.divmod(n, &b, &q);
        float* dst = dx + ((u64)b * p.c_in + ci) * hw.d + q;
        *dst = p.beta == 0.0f ? acc : acc + p.beta * *dst;
    }
};

extern "C" __global__ void __launch_bounds__(SIMT_THREADS)
conv2d_bwd_data_simt(const ConvParams p, const float* __restrict__ dy, const float* __restrict__ w, float* dx) {
    const ConvDiv d(p, p.h, p.w);
    gemm_core_simt(DataA{w, p, d.khw}, DataB{dy, p, d, FastDivmod(p.stride)}, DataStore{dx, p, d.plane}, p.c_in,
                   p.n * p.h * p.w, 0, p.c_out * p.kh * p.kw);
}

// ---- backward weight -------------------------------------------------------------------------
struct WeightA {  // A[co, (b,oy,ox)] = dy[b, co, oy, ox]
    const float* dy;
    ConvParams p;
    FastDivmod ohw;
    __device__ float operator()(u32 co, u32 k) const {
        if (co >= p.c_out || k >= p.n * ohw.d) return 0.0f;
        u32 b, q;
        ohw.divmod(k, &b, &q);
        return dy[((u64)b * p.c_out + co) * ohw.d + q];
    }
};

struct WeightB {  // B[(b,oy,ox), (ci,ky,kx)] = x_col transposed
    const float* x;
    ConvParams p;
    ConvDiv d;
    __device__ float operator()(u32 k, u32 n) const { return im2col_at(x, p, d, n, k); }
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
    const ConvDiv d(p, p.oh, p.ow);
    gemm_core_simt(WeightA{dy, p, d.plane}, WeightB{x, p, d}, WeightStore{out, p}, p.c_out, p.c_in * p.kh * p.kw, kb,
                   ke);
}

// ---- tensor-core variants (sm_80+) -------------------------------------------------------------
#if __CUDA_ARCH__ >= 800
// Min 7 blocks per SM caps ptxas at 72 registers, this kernel's occupancy before FastDivmod (28
// warps per SM) with no spills; left free, ptxas spends 122 registers on the cheaper loaders'
// index arithmetic and only 4 blocks fit.
extern "C" __global__ void __launch_bounds__(MMA_THREADS, 7)
conv2d_fwd_tf32(const ConvParams p, const float* __restrict__ x, const float* __restrict__ w, float* y) {
    const ConvDiv d(p, p.oh, p.ow);
    gemm_core_tf32(FwdA{w, p}, FwdB{x, p, d}, FwdStore{y, p, d.plane}, p.c_out, p.n * p.oh * p.ow, 0,
                   p.c_in * p.kh * p.kw);
}

extern "C" __global__ void __launch_bounds__(MMA_THREADS)
conv2d_bwd_data_tf32(const ConvParams p, const float* __restrict__ dy, const float* __restrict__ w, float* dx) {
    const ConvDiv d(p, p.h, p.w);
    gemm_core_tf32(DataA{w, p, d.khw}, DataB{dy, p, d, FastDivmod(p.stride)}, DataStore{dx, p, d.plane}, p.c_in,
                   p.n * p.h * p.w, 0, p.c_out * p.kh * p.kw);
}

extern "C" __global__ void __launch_bounds__(MMA_THREADS)
conv2d_bwd_weight_tf32(const ConvParams p, const float* __restrict__ x, const float* __restrict__ dy, float* out) {
    u32 kb, ke;
    split_range(p, &kb, &ke);
    const ConvDiv d(p, p.oh, p.ow);
    gemm_core_tf32(WeightA{dy, p, d.plane}, WeightB{x, p, d}, WeightStore{out, p}, p.c_out, p.c_in * p.kh * p.kw, kb,
                   ke);
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
/// y[b, c, i] += bias[c]. Grid-stride over n*c*hw. The channel (i / hw) % c takes FastDivmod when
/// every index fits in 32 bits (a grid-uniform test), else 64-bit division.
extern "C" __global__ void bias_fwd(const BiasParams p, const float* __restrict__ bias, float* y) {
    const u64 total = (u64)p.n * p.c * p.hw;
    const u64 first = blockIdx.x * (u64)blockDim.x + threadIdx.x, step = (u64)gridDim.x * blockDim.x;
    if (total <= 0xffffffffull) {
        const FastDivmod hw(p.hw), c(p.c);
        for (u64 i = first; i < total; i += step) y[i] += bias[c.mod(hw.div((u32)i))];
    } else {
        for (u64 i = first; i < total; i += step) y[i] += bias[(i / p.hw) % p.c];
    }
}

/// dbias[c] = sum_(b,i) dy[b, c, i] + beta * dbias[c]. One block per channel.
extern "C" __global__ void bias_bwd(const BiasParams p, const float* __restrict__ dy, float* dbias) {
    const u32 c = blockIdx.x;
    const u32 m = p.n * p.hw;
    const FastDivmod hw(p.hw);
    float s = 0.0f;
    for (u32 j = threadIdx.x; j < m; j += blockDim.x) {
        u32 b, i;
        hw.divmod(j, &b, &i);
        s += dy[((u64)b * p.c + c) * p.hw + i];
    }
    s = block_sum(s);
    if (threadIdx.x == 0) dbias[c] = p.beta == 0.0f ? s : s + p.beta * dbias[c];
}
