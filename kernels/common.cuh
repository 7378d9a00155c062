// Shared definitions of the CUDA kernels: parameter structs (one per kernel family, mirrored
// field for field by `#[repr(C)]` structs in src/backend/cuda/params.rs), block reductions and the
// two GEMM cores (SIMT and TF32 tensor-core) that gemm.cu and conv.cu instantiate with their own
// operand loaders.
//
// The source is compiled by NVRTC with no headers: every kernel file pastes this one in place of
// its `#include "common.cuh"` line before compiling.
#pragma once

typedef unsigned char u8;
typedef unsigned int u32;
typedef unsigned long long u64;

// +inf without <math.h> (NVRTC compiles with no headers).
#define POS_INF __int_as_float(0x7f800000)

// ---------------------------------------------------------------------------------------------
// Parameter structs. Sizes are asserted here and in Rust, so a field added on one side only fails
// the NVRTC compile test.
// ---------------------------------------------------------------------------------------------

/// Row-major C[m,n] = alpha * op(A)[m,k] * op(B)[k,n] + beta * C.
struct GemmParams {
    u32 m, n, k;
    u32 lda, ldb, ldc;
    u32 trans_a, trans_b;
    float alpha, beta;
};
static_assert(sizeof(GemmParams) == 40, "GemmParams layout");

/// NCHW convolution, weight [c_out, c_in, kh, kw]. `k_chunk` is the split-K chunk of the weight
/// gradient (grid.z partial sums); `beta` scales what is already in the output (0 overwrites).
struct ConvParams {
    u32 n, c_in, h, w;
    u32 c_out, kh, kw, stride, pad;
    u32 oh, ow;
    u32 k_chunk;
    float beta;
};
static_assert(sizeof(ConvParams) == 52, "ConvParams layout");

/// Per-channel bias of an [n, c, hw] tensor (conv and linear layers).
struct BiasParams {
    u32 n, c, hw;
    float beta;
};
static_assert(sizeof(BiasParams) == 16, "BiasParams layout");

/// Sum of `splits` partial [len] buffers: out = sum + beta * out.
struct ReduceParams {
    u32 len, splits;
    float beta;
};
static_assert(sizeof(ReduceParams) == 12, "ReduceParams layout");

/// Batch normalisation over [n, c, hw], statistics per channel (PyTorch BatchNorm2d).
struct BnParams {
    u32 n, c, hw;
    float eps, momentum;
};
static_assert(sizeof(BnParams) == 20, "BnParams layout");

/// Elementwise op over `len` values.
struct EltParams {
    u32 len;
};
static_assert(sizeof(EltParams) == 4, "EltParams layout");

/// 2-D pooling over NCHW planes. Max pooling uses kh, kw, stride, pad; adaptive average pooling
/// derives its windows from (h, w) -> (oh, ow) and ignores them.
struct PoolParams {
    u32 n, c, h, w;
    u32 oh, ow;
    u32 kh, kw, stride, pad;
};
static_assert(sizeof(PoolParams) == 40, "PoolParams layout");

/// Softmax cross-entropy over [n, classes] logits; `scale` multiplies the gradient (g / n for
/// the mean over the batch).
struct XentParams {
    u32 n, classes;
    float scale;
};
static_assert(sizeof(XentParams) == 12, "XentParams layout");

/// SGD with momentum and weight decay, PyTorch semantics (dampening 0, no Nesterov).
struct SgdParams {
    u32 len;
    float lr, momentum, weight_decay;
};
static_assert(sizeof(SgdParams) == 16, "SgdParams layout");

/// Top-k by magnitude over `len` values. `shift` is the radix pass's bit offset; `chunk` is the
/// number of consecutive elements one block owns in the counting and compaction passes.
struct TopkParams {
    u32 len, k, shift, chunk, nblocks;
};
static_assert(sizeof(TopkParams) == 20, "TopkParams layout");

/// Segmented top-k and sums of squares over `nseg` consecutive segments of one buffer, cut into
/// `nblocks` blocks of at most `chunk` values that never straddle a segment (the block table);
/// `shift` is the radix pass's byte position.
struct SegParams {
    u32 nseg, nblocks, chunk, shift;
};
static_assert(sizeof(SegParams) == 16, "SegParams layout");

/// Inverted dropout over `len` values. Element i is dropped when the upper 32 bits of its hash
/// (the i-th value of the SplitMix64 stream started at the seed) are below `threshold` =
/// ceil(p * 2^32), i.e. with probability p; kept values are multiplied by `scale` = 1/(1 - p). The
/// 64-bit seed is passed as two halves so that the struct holds only 32-bit fields.
struct DropoutParams {
    u32 len, threshold, seed_lo, seed_hi;
    float scale;
};
static_assert(sizeof(DropoutParams) == 20, "DropoutParams layout");

/// Weighted packing before top-k: cand = weight * g + residual.
struct PackParams {
    u32 len;
    float weight;
};
static_assert(sizeof(PackParams) == 8, "PackParams layout");

/// Scatter of `count` (index, value) pairs into a dense buffer of `len` values.
struct ScatterParams {
    u32 count, len;
    float scale;
};
static_assert(sizeof(ScatterParams) == 12, "ScatterParams layout");

// ---------------------------------------------------------------------------------------------
// Division by a run-time invariant divisor
// ---------------------------------------------------------------------------------------------

/// Unsigned 32-bit quotient and remainder by a divisor fixed at construction, computed with one
/// multiply-high, a subtraction, an addition and two shifts (plus a multiply-add for the
/// remainder) instead of a division. GPUs have no integer divide instruction: a u32 `/` or `%` by
/// a run-time value is a software sequence of a dozen or more instructions (float reciprocal and
/// corrections), and the conv loaders did six to eight of them per element fetched. The
/// constructor does one 64-bit division, so build each divisor once per thread (at kernel entry),
/// not per element.
///
/// Method: Granlund & Montgomery, "Division by invariant integers using multiplication" (PLDI
/// 1994), Figure 4.1 -- the round-up multiplier family that CUTLASS's FastDivmod also uses, in its
/// variant with a 33-bit multiplier, which is exact for the whole u32 range. With
///     l = ceil(log2 d)                                  (0 for d = 1, 32 for d > 2^31)
///     M = floor(2^(32+l) / d) + 1 = 2^32 + m,           m = floor(2^32 (2^l - d) / d) + 1 < 2^32
/// the quotient is floor(x M / 2^(32+l)) = (x + t) >> l with t = umulhi(x, m) <= x. The sum x + t
/// can carry into bit 32, so it is evaluated as (t + ((x - t) >> s1)) >> s2 with s1 = min(l, 1),
/// s2 = max(l - 1, 0); d = 1 (l = 0) gives m = 1, t = 0, q = x, and a power of two 2^l gives
/// m = 1, t = 0, q = x >> l.
///
/// Range: exact for EVERY numerator x in [0, 2^32) and every divisor d in [1, 2^32). Proof:
/// M d = 2^(32+l) + e with 0 < e <= d <= 2^l, so x M / 2^(32+l) = x / d + x e / (d 2^(32+l)),
/// and the second term is below 1/d because x e < 2^32 2^l; adding less than 1/d to x / d =
/// q + r/d (r <= d - 1) stays below q + 1. (CUTLASS's two-instruction variant, a 32-bit
/// multiplier and one shift, is exact only for x < 2^31; the conv kernels index tensors of up to
/// 2^32 - 1 elements, the limit ops.rs enforces, so the full range is kept here.)
/// The harness (tests/kernel_emu/harness.cpp, case "fastdivmod") checks this struct against `/`
/// and `%` for every divisor 1..4096, powers of two and their neighbours up to 2^32 - 1, and
/// millions of random numerators and divisors, boundaries included.
/// A divisor of 0 may be constructed (the kernels build dividers from extents such as kh*kw
/// before knowing whether the GEMM is empty) without faulting; div/mod by it are unspecified and
/// never called.
struct FastDivmod {
    u32 d;       // the divisor, as given
    u32 m;       // low 32 bits of the 33-bit multiplier 2^32 + m
    u32 s1, s2;  // min(l, 1), max(l - 1, 0)

    __device__ explicit FastDivmod(u32 divisor) : d(divisor) {
        const u32 dd = divisor != 0 ? divisor : 1;     // 0 is built as 1 (see above)
        const u32 l = 32 - (u32)__clz((int)(dd - 1));  // ceil(log2 dd)
        m = (u32)(((((u64)1 << l) - dd) << 32) / dd) + 1;
        s1 = l < 1 ? l : 1;
        s2 = l > 1 ? l - 1 : 0;
    }
    /// floor(x / d), any x.
    __device__ __forceinline__ u32 div(u32 x) const {
        const u32 t = __umulhi(x, m);
        return (t + ((x - t) >> s1)) >> s2;
    }
    /// x % d, any x.
    __device__ __forceinline__ u32 mod(u32 x) const { return x - div(x) * d; }
    /// Both at once: *q = x / d, *r = x % d.
    __device__ __forceinline__ void divmod(u32 x, u32* q, u32* r) const {
        *q = div(x);
        *r = x - *q * d;
    }
};

// ---------------------------------------------------------------------------------------------
// Reductions
// ---------------------------------------------------------------------------------------------

__device__ __forceinline__ float warp_sum(float v) {
    for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
    return v;
}

__device__ __forceinline__ float warp_max(float v) {
    for (int o = 16; o > 0; o >>= 1) v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, o));
    return v;
}

/// Sum over the block, returned to every thread. blockDim.x must be a multiple of 32 (<= 1024).
/// The order of additions is fixed by the launch shape, so results are run-to-run identical.
__device__ float block_sum(float v) {
    __shared__ float part[32];
    const u32 lane = threadIdx.x & 31, wid = threadIdx.x >> 5, nw = blockDim.x >> 5;
    v = warp_sum(v);
    __syncthreads();  // part[] may still be read by a previous call
    if (lane == 0) part[wid] = v;
    __syncthreads();
    v = lane < nw ? part[lane] : 0.0f;
    return warp_sum(v);
}

__device__ float block_max(float v) {
    __shared__ float part[32];
    const u32 lane = threadIdx.x & 31, wid = threadIdx.x >> 5, nw = blockDim.x >> 5;
    v = warp_max(v);
    __syncthreads();
    if (lane == 0) part[wid] = v;
    __syncthreads();
    v = lane < nw ? part[lane] : -POS_INF;
    return warp_max(v);
}

// ---------------------------------------------------------------------------------------------
// GEMM cores. C[m,n] = sum_k A(m,k) B(k,n) over k in [k_begin, k_end), tile (blockIdx.y, blockIdx.x).
// Loaders are functors `float operator()(u32 row, u32 col) const` that return 0 outside the
// matrix; the store is `void operator()(u32 m, u32 n, float acc) const`, called inside bounds.
// ---------------------------------------------------------------------------------------------

#define TILE_M 64
#define TILE_N 64
#define TILE_K 16
#define SIMT_THREADS 256
#define MMA_THREADS 128

/// Plain FP32 core: 256 threads, each owning a 4x4 set of outputs strided by 16 so that
/// neighbouring threads store neighbouring columns.
template <class LA, class LB, class ST>
__device__ void gemm_core_simt(const LA& la, const LB& lb, const ST& st, u32 M, u32 N, u32 k_begin,
                               u32 k_end) {
    __shared__ float As[TILE_K][TILE_M + 1];
    __shared__ float Bs[TILE_K][TILE_N];
    const u32 tid = threadIdx.x, tx = tid % 16, ty = tid / 16;
    const u32 m0 = blockIdx.y * TILE_M, n0 = blockIdx.x * TILE_N;
    float acc[4][4];
#pragma unroll
    for (int i = 0; i < 4; i++)
#pragma unroll
        for (int j = 0; j < 4; j++) acc[i][j] = 0.0f;

    for (u32 k0 = k_begin; k0 < k_end; k0 += TILE_K) {
#pragma unroll
        for (int i = 0; i < 4; i++) {
            const u32 idx = tid + i * SIMT_THREADS;
            const u32 mm = idx / TILE_K, kk = idx % TILE_K;
            const u32 k = k0 + kk;
            As[kk][mm] = k < k_end ? la(m0 + mm, k) : 0.0f;
        }
#pragma unroll
        for (int i = 0; i < 4; i++) {
            const u32 idx = tid + i * SIMT_THREADS;
            const u32 kk = idx / TILE_N, nn = idx % TILE_N;
            const u32 k = k0 + kk;
            Bs[kk][nn] = k < k_end ? lb(k, n0 + nn) : 0.0f;
        }
        __syncthreads();
#pragma unroll
        for (int kk = 0; kk < TILE_K; kk++) {
            float a[4], b[4];
#pragma unroll
            for (int i = 0; i < 4; i++) a[i] = As[kk][ty + 16 * i];
#pragma unroll
            for (int j = 0; j < 4; j++) b[j] = Bs[kk][tx + 16 * j];
#pragma unroll
            for (int i = 0; i < 4; i++)
#pragma unroll
                for (int j = 0; j < 4; j++) acc[i][j] = fmaf(a[i], b[j], acc[i][j]);
        }
        __syncthreads();
    }
#pragma unroll
    for (int i = 0; i < 4; i++)
#pragma unroll
        for (int j = 0; j < 4; j++) {
            const u32 m = m0 + ty + 16 * i, n = n0 + tx + 16 * j;
            if (m < M && n < N) st(m, n, acc[i][j]);
        }
}

#if __CUDA_ARCH__ >= 800
__device__ __forceinline__ u32 to_tf32(float x) {
    u32 r;
#ifdef SCADLES_KERNEL_EMU
    r = emu_cvt_rna_tf32(x);  // CPU emulation (tests/kernel_emu/shim.h)
#else
    asm("cvt.rna.tf32.f32 %0, %1;" : "=r"(r) : "f"(x));
#endif
    return r;
}

/// Tensor-core core (sm_80+): 4 warps in a 2x2 grid, each warp computing a 32x32 sub-tile as
/// 2 (m16) x 4 (n8) `mma.sync.m16n8k8` TF32 products with FP32 accumulation. Operands are rounded
/// to TF32 (10-bit mantissa) when staged into shared memory.
template <class LA, class LB, class ST>
__device__ void gemm_core_tf32(const LA& la, const LB& lb, const ST& st, u32 M, u32 N, u32 k_begin,
                               u32 k_end) {
    __shared__ u32 As[TILE_M][TILE_K + 4];  // row m, k contiguous (padding breaks bank conflicts)
    __shared__ u32 Bs[TILE_K][TILE_N + 8];  // row k, n contiguous
    const u32 tid = threadIdx.x, lane = tid & 31, warp = tid >> 5;
    const u32 g = lane >> 2, t = lane & 3;  // mma groupID / thread-in-group
    const u32 wm = (warp >> 1) * 32, wn = (warp & 1) * 32;
    const u32 m0 = blockIdx.y * TILE_M, n0 = blockIdx.x * TILE_N;
    float acc[2][4][4];
#pragma unroll
    for (int i = 0; i < 2; i++)
#pragma unroll
        for (int j = 0; j < 4; j++)
#pragma unroll
            for (int r = 0; r < 4; r++) acc[i][j][r] = 0.0f;

    for (u32 k0 = k_begin; k0 < k_end; k0 += TILE_K) {
#pragma unroll
        for (int i = 0; i < 8; i++) {
            const u32 idx = tid + i * MMA_THREADS;
            const u32 mm = idx / TILE_K, kk = idx % TILE_K;
            const u32 k = k0 + kk;
            As[mm][kk] = to_tf32(k < k_end ? la(m0 + mm, k) : 0.0f);
        }
#pragma unroll
        for (int i = 0; i < 8; i++) {
            const u32 idx = tid + i * MMA_THREADS;
            const u32 kk = idx / TILE_N, nn = idx % TILE_N;
            const u32 k = k0 + kk;
            Bs[kk][nn] = to_tf32(k < k_end ? lb(k, n0 + nn) : 0.0f);
        }
        __syncthreads();
#pragma unroll
        for (int ks = 0; ks < TILE_K; ks += 8) {
            u32 a[2][4], b[4][2];
#pragma unroll
            for (int i = 0; i < 2; i++) {
                const u32 r = wm + 16 * i + g;
                a[i][0] = As[r][ks + t];
                a[i][1] = As[r + 8][ks + t];
                a[i][2] = As[r][ks + t + 4];
                a[i][3] = As[r + 8][ks + t + 4];
            }
#pragma unroll
            for (int j = 0; j < 4; j++) {
                const u32 c = wn + 8 * j + g;
                b[j][0] = Bs[ks + t][c];
                b[j][1] = Bs[ks + t + 4][c];
            }
#pragma unroll
            for (int i = 0; i < 2; i++)
#pragma unroll
                for (int j = 0; j < 4; j++)
#ifdef SCADLES_KERNEL_EMU
                    emu_mma_m16n8k8_tf32(acc[i][j], a[i], b[j]);  // CPU emulation (tests/kernel_emu/shim.h)
#else
                    asm volatile(
                        "mma.sync.aligned.m16n8k8.row.col.f32.tf32.tf32.f32 "
                        "{%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, {%0,%1,%2,%3};\n"
                        : "+f"(acc[i][j][0]), "+f"(acc[i][j][1]), "+f"(acc[i][j][2]), "+f"(acc[i][j][3])
                        : "r"(a[i][0]), "r"(a[i][1]), "r"(a[i][2]), "r"(a[i][3]), "r"(b[j][0]), "r"(b[j][1]));
#endif
        }
        __syncthreads();
    }
#pragma unroll
    for (int i = 0; i < 2; i++)
#pragma unroll
        for (int j = 0; j < 4; j++)
#pragma unroll
            for (int r = 0; r < 4; r++) {
                const u32 m = m0 + wm + 16 * i + g + (r >= 2 ? 8 : 0);
                const u32 n = n0 + wn + 8 * j + 2 * t + (r & 1);
                if (m < M && n < N) st(m, n, acc[i][j][r]);
            }
}
#endif
